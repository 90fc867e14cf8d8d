"""The processor's partial decoding changes nothing but speed."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec

from persona.config import load_config
from persona.engine import Engine
from persona.identity.rules import IdentifierRule, IdentityRules
from persona.profiles.view import body_decoder, decode_partial
from tests.support.events import event
from tests.support.state import snapshot
from tests.support.streams import random_stream

_full = msgspec.json.Decoder().decode


def test_partial_and_full_decoding_give_the_same_state(tmp_path: Path) -> None:
    events = random_stream(random.Random(7), 300)
    events += [event("track", user="u1", event="Order Refunded", properties={"total": 5}),
               event("identify", anon="odd", context={"traits": "not an object", "device": "x"}),
               event("group", user="u2", groupId="g1", traits={"name": "Acme"})]
    states = []
    for name, decode in (("partial", decode_partial), ("full", _full)):
        with Engine.open(load_config(env={}, data_dir=tmp_path / name)) as engine:
            engine.processor._decode = decode
            engine.log.append(events)
            engine.processor.run_until_caught_up()
            states.append(snapshot(engine))
    assert states[0] == states[1]


def test_unusual_shapes_fall_back_to_a_full_decode() -> None:
    raw = msgspec.json.encode({"type": "track", "event": "E", "context": "a string", "properties": {"a": 1}})
    assert decode_partial(raw) == _full(raw)


def test_rules_outside_the_view_get_the_full_decoder() -> None:
    assert body_decoder(IdentityRules()) is decode_partial
    custom = IdentityRules(identifiers=[IdentifierRule("user_id", ["userId"], 1),
                                        IdentifierRule("crm", ["properties.crm_id"], 1)])
    assert body_decoder(custom) is not decode_partial
