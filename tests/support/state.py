"""The whole derived state of a store, for comparing two ways of computing it."""

from __future__ import annotations

from typing import Any

from persona.engine import Engine
from persona.profiles.reader import profile_json


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything derived, table by table, and the profiles as the API shows them."""
    db = engine.state_db
    return {
        "profiles": {p.id: profile_json(p) for p in engine.state.all_profiles()},
        "records": db.query("SELECT id, root, created_seq, data FROM profiles ORDER BY id"),
        "fragments": db.query("SELECT id, data FROM fragments ORDER BY id"),
        "identities": db.query("SELECT key, profile_id FROM identities ORDER BY key"),
        "timeline": db.query("SELECT profile_id, timestamp, seq FROM timeline ORDER BY seq"),
        "merges": db.query("SELECT seq, at, survivor, merged, reason FROM merges ORDER BY seq, merged"),
        "dropped": db.query("SELECT seq, kind, value, reason FROM dropped_links ORDER BY seq, kind, value"),
        "counts": engine.state.counts(),
    }
