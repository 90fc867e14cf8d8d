"""Storage plumbing shared by the domain stores: SQLite connections, the single writer, migrations."""
