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
    def get_many(self, ids: Iterable[str], fresh_within: float = 0.0) -> dict[str, Item]: ...  # those that exist
    def page(self, limit: int, cursor: str | None = None) -> ItemPage: ...  # by id
    def count(self) -> int: ...
    def delete(self, item_id: str) -> None: ...              # NotFound if absent


SERVING_CACHE = 100_000  # items kept in memory for serving (`get_many(fresh_within=…)`)
SERVING_FRESHNESS = 5.0  # seconds a served item may be old: stock and price changes show within this


class SQLCatalogStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cached: dict[str, tuple[float, Item | None]] = {}  # id -> (read at, monotonic; the item or None)

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
            self._forget(latest)
        return Upserted(created=len(latest) - len(existing), updated=len(existing))

    def get(self, item_id: str) -> Item:
        found = self.get_many([item_id]).get(item_id)
        if found is None:
            raise NotFound(f"no catalog item {item_id!r}", field="id")
        return found

    def get_many(self, ids: Iterable[str], fresh_within: float = 0.0) -> dict[str, Item]:
        """The items that exist. With `fresh_within` (seconds), what was read that recently comes
        from memory (serving: a list's candidates would cost a query and a decode each per
        request); a change made through this store shows at once, one made elsewhere within that."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Item] = {}
        if fresh_within > 0:
            oldest, missing = time.monotonic() - fresh_within, []
            for item_id in wanted:
                hit = self._cached.get(item_id)
                if hit is not None and hit[0] >= oldest:
                    if hit[1] is not None:
                        found[item_id] = hit[1]
                else:
                    missing.append(item_id)
            wanted = missing
        for part in chunks(wanted, chunk_size(self.db.dialect)):
            condition, params = where_in(self.db.dialect, "id", part)
            for (body,) in self.db.query(f"SELECT body FROM catalog_items WHERE {condition}", params):
                item = _decode_item(bytes(body))
                found[item.id] = item
        if fresh_within > 0 and wanted:
            if len(self._cached) > SERVING_CACHE:
                self._cached.clear()
            now = time.monotonic()
            self._cached.update((item_id, (now, found.get(item_id))) for item_id in wanted)
        return found

    def _forget(self, ids: Iterable[str]) -> None:
        for item_id in ids:
            self._cached.pop(item_id, None)

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
        self._forget([item_id])

    def _existing(self, ids: list[str]) -> set[str]:
        existing: set[str] = set()
        for part in chunks(ids, chunk_size(self.db.dialect)):
            condition, params = where_in(self.db.dialect, "id", part)
            existing.update(r[0] for r in self.db.query(f"SELECT id FROM catalog_items WHERE {condition}", params))
        return existing

    def _flag(self, value: bool) -> bool | int:
        return value if self.db.dialect == "postgres" else int(value)
