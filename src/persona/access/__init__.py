"""Access: sources, their write keys, and secret keys for reading."""

from persona.access.keys import ApiKey, KeyKind, KeyStore, SQLiteKeyStore

__all__ = ["ApiKey", "KeyKind", "KeyStore", "SQLiteKeyStore"]
