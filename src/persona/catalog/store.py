"""Where the catalog is kept: with the log's store, as configuration.

The catalog is imported (or written through the API), not derived from events, so like
segment definitions it lives beside the log and survives `persona rebuild`. Each item is
one row: its id, where it came from, a few columns a query may filter on, and the whole
item as JSON.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from persona.catalog.items import Item
from persona.errors import NotFound
from persona.storage.sql import Connection, Database, Insert, Migration, chunk_size, chunks, where_in

MIGRATIONS = [
    Migration(500, "catalog items", [
        """CREATE TABLE catalog_items (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            top_category TEXT,
            brand TEXT,
            price REAL,
            in_stock INTEGER NOT NULL,
            body BLOB NOT NULL,
            updated_at REAL NOT NULL
        )""",
    ], postgres=[
        """CREATE TABLE catalog_items (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            top_category TEXT,
            brand TEXT,
            price DOUBLE PRECISION,
            in_stock BOOLEAN NOT NULL,
            body BYTEA NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
    ]),
]

_encode = msgspec.json.Encoder().encode
_decode_item = msgspec.json.Decoder(Item).decode
_UPSERT = Insert("catalog_items", (("id", "text"), ("source", "text"), ("top_category", "text"), ("brand", "text"),
                                   ("price", "float8"), ("in_stock", "boolean"), ("body", "bytea"),
                                   ("updated_at", "float8")),
                 conflict="ON CONFLICT (id) DO UPDATE SET source = excluded.source,"
                          " top_category = excluded.top_category, brand = excluded.brand, price = excluded.price,"
                          " in_stock = excluded.in_stock, body = excluded.body, updated_at = excluded.updated_at")


@dataclass(frozen=True)
class Upserted:
    created: int
    updated: int


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]
    next: str | None  # the cursor of the next page, None on the last


class CatalogStore(Protocol):
    def upsert(self, items: Sequence[Item]) -> Upserted:
        """Store the items in one transaction (the last wins for an id given twice)."""
        ...

    def get(self, item_id: str) -> Item: ...                 # NotFound if absent
    def get_many(self, ids: Iterable[str]) -> dict[str, Item]: ...  # the ones that exist
    def page(self, limit: int, cursor: str | None = None) -> ItemPage: ...  # by id
    def count(self) -> int: ...
    def delete(self, item_id: str) -> None: ...              # NotFound if absent


class SQLCatalogStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert(self, items: Sequence[Item]) -> Upserted:
        now = time.time()
        latest = {item.id: msgspec.structs.replace(item, updated_at=now) for item in items}
        existing = self._existing(list(latest))
        rows = [(i.id, i.source, i.top_category, i.brand, i.price, self._flag(i.in_stock), _encode(i), now)
                for i in latest.values()]

        def write(conn: Connection) -> None:
            for part in chunks(rows, 5000):
                _UPSERT.run(conn, self.db.dialect, part)

        if rows:
            self.db.write(write)
        return Upserted(created=len(latest) - len(existing), updated=len(existing))

    def get(self, item_id: str) -> Item:
        found = self.get_many([item_id]).get(item_id)
        if found is None:
            raise NotFound(f"no catalog item {item_id!r}", field="id")
        return found

    def get_many(self, ids: Iterable[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for part in chunks(list(dict.fromkeys(ids)), chunk_size(self.db.dialect)):
            condition, params = where_in(self.db.dialect, "id", part)
            for (body,) in self.db.query(f"SELECT body FROM catalog_items WHERE {condition}", params):
                item = _decode_item(bytes(body))
                found[item.id] = item
        return found

    def page(self, limit: int, cursor: str | None = None) -> ItemPage:
        rows = self.db.query("SELECT body FROM catalog_items WHERE id > ? ORDER BY id LIMIT ?",
                             (cursor or "", limit + 1))
        items = [_decode_item(bytes(body)) for (body,) in rows[:limit]]
        return ItemPage(items, items[-1].id if len(rows) > limit else None)

    def count(self) -> int:
        row = self.db.query_one("SELECT count(*) FROM catalog_items")
        return int(row[0]) if row else 0

    def delete(self, item_id: str) -> None:
        self.get(item_id)  # 404 if absent; the write itself may run twice (see storage/sql.py)
        self.db.write(lambda conn: conn.execute("DELETE FROM catalog_items WHERE id = ?", (item_id,)))

    def _existing(self, ids: list[str]) -> set[str]:
        existing: set[str] = set()
        for part in chunks(ids, chunk_size(self.db.dialect)):
            condition, params = where_in(self.db.dialect, "id", part)
            existing.update(r[0] for r in self.db.query(f"SELECT id FROM catalog_items WHERE {condition}", params))
        return existing

    def _flag(self, value: bool) -> bool | int:
        return value if self.db.dialect == "postgres" else int(value)
