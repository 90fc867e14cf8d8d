"""The batch evaluator agrees with the reference evaluator on random data and definitions.

Properties of every JSON type (numbers, text, booleans, lists, null, missing) meet random
definitions of every kind plus hand-made ones aimed at type edge cases (5 is 5.0 but not
"5" or true; `contains` on text and on lists; ties of `most_frequent`).
"""

from __future__ import annotations

import math
import random
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from persona.log.events import to_micros
from persona.segments.batch import BatchEvaluator
from persona.segments.definitions import parse_computed_trait, parse_segment
from persona.segments.evaluate import EventFact
from persona.segments.live import Plan
from persona.synth.definitions import EVENTS, random_definitions
from tests.support.audiences import expected
from tests.support.events import BASE

NOW = to_micros(BASE + timedelta(days=40))
EDGE_SEGMENTS = [
    {"id": "x_contains", "where": {"event": "Product Viewed", "last": "category", "contains": "s"}},
    {"id": "x_list", "where": {"event": "Product Viewed", "within": "30d", "last": "tags", "contains": "red"}},
    {"id": "x_list_number", "where": {"event": "Product Viewed", "first": "tags", "contains": 5}},
    {"id": "x_bool", "where": {"trait": "vip", "eq": True}},
    {"id": "x_bool_in", "where": {"trait": "vip", "in": [False, 1]}},
    {"id": "x_not_in", "where": {"trait": "country", "not_in": ["DE", 5]}},
    {"id": "x_ne", "where": {"trait": "age", "ne": 30}},
    {"id": "x_regex", "where": {"event": "Product Added", "first": "category", "regex": "^(sh|ba)"}},
    {"id": "x_most_frequent", "where": {"event": "Product Viewed", "most_frequent": "price", "eq": 20}},
    {"id": "x_distinct", "where": {"event": "Product Viewed", "distinct": "price", "gte": 2}},
    {"id": "x_count_property", "where": {"event": "Order Completed", "count": "revenue", "gte": 1}},
    {
        "id": "x_filtered",
        "where": {
            "event": "Product Viewed",
            "where": [{"property": "tags", "contains": "red"}, {"property": "price", "ne": 20}],
        },
    },
    {"id": "x_never", "where": {"not": {"event": "Order Completed", "within": "7d"}}},
    {
        "id": "x_nested",
        "where": {"any": [{"segment": "x_bool"}, {"all": [{"segment": "x_never"}, {"trait": "plan", "exists": True}]}]},
    },
]
EDGE_TRAITS = [
    {"id": "y_tags", "event": "Product Viewed", "most_frequent": "tags"},
    {"id": "y_last_price", "event": "Product Viewed", "within": "7d", "last": "price"},
    {"id": "y_avg", "event": "Order Completed", "avg": "revenue"},
    {"id": "y_distinct", "event": "Product Viewed", "distinct": "category"},
]

values = st.one_of(
    st.sampled_from([5, 5.0, 20, 20.0, 49.5, 120, 0.1, -3]),
    st.sampled_from(["5", "shoes", "bags", "tents"]),
    st.booleans(),
    st.none(),
    st.lists(st.sampled_from(["red", "blue", 5, 5.0, True]), max_size=3),
)
numbers = st.sampled_from([5, 20, 20.0, 49.5, 120])
texts = st.sampled_from(["shoes", "bags", "tents"])
# Mixed types in a property, or one type throughout (which the evaluator compiles differently).
properties = st.sampled_from([values, numbers, texts]).flatmap(
    lambda kind: st.dictionaries(st.sampled_from(["category", "price", "revenue", "tags"]), kind, max_size=4))
traits = st.dictionaries(
    st.sampled_from(["plan", "age", "country", "vip"]),
    st.one_of(values, st.sampled_from(["pro", "free", "team", "DE", "FR", 30, 25])),
    max_size=4,
)
events = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.one_of(st.integers(-60 * 24 * 100, 60 * 24 * 2), st.integers(-60 * 24 * 8, 0), st.just(-60)),  # ties
        st.sampled_from(EVENTS),
        properties,
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(events=events, traits=st.lists(traits, min_size=4, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_batch_equals_reference(
    events: list[tuple[int, int, str, dict[str, Any]]], traits: list[dict[str, Any]], seed: int
) -> None:
    drawn = random_definitions(random.Random(seed), segments=6, computed=3)
    segments = [parse_segment(d) for d in drawn["segment"] + EDGE_SEGMENTS]
    computed = [parse_computed_trait(d) for d in drawn["computed_trait"] + EDGE_TRAITS]
    rows = [
        (f"p{who}", NOW + minutes * 60_000_000, seq, name, props)
        for seq, (who, minutes, name, props) in enumerate(events, start=1)
    ]
    profiles = {f"p{i}": t for i, t in enumerate(traits)}

    evaluator = BatchEvaluator(segments, computed)
    evaluator.load(evaluator.event_batches(rows), evaluator.profile_table(profiles))
    got = evaluator.evaluate(NOW).profiles()

    plan = Plan(segments, computed)
    for pid, profile_traits in profiles.items():
        facts = [EventFact(ts, seq, name, props) for who, ts, seq, name, props in rows if who == pid]
        want_segments, want_computed = expected(plan, profile_traits, facts, NOW)
        got_segments, got_computed = got[pid]
        assert got_segments == want_segments, (pid, got_segments ^ want_segments)
        assert got_computed.keys() == want_computed.keys(), pid
        for trait_id, value in want_computed.items():
            assert _same(got_computed[trait_id], value), (pid, trait_id, got_computed[trait_id], value)


def test_sizes_members_and_a_profile_with_no_events() -> None:
    segments = [
        parse_segment({"id": "buyers", "where": {"event": "Order Completed", "sum": "revenue", "gt": 100}}),
        parse_segment({"id": "idle", "where": {"not": {"event": "Order Completed", "within": "30d"}}}),
    ]
    rows = [
        ("a", NOW - 1, 1, "Order Completed", {"revenue": 80}),
        ("a", NOW - 2, 2, "Order Completed", {"revenue": 30}),
        ("b", NOW - 40 * 86_400_000_000, 3, "Order Completed", {"revenue": 500}),
        ("c", NOW - 1, 4, "Page", {"revenue": 500}),
    ]  # an event no definition reads
    evaluator = BatchEvaluator(segments, [])
    evaluator.load(evaluator.event_batches(rows), evaluator.profile_table({"a": {}, "b": {}, "c": {}, "d": {}}))
    result = evaluator.evaluate(NOW)
    assert result.sizes() == {"buyers": 2, "idle": 3}
    assert result.members("buyers") == {"a", "b"}
    assert result.members("idle") == {"b", "c", "d"}
    assert evaluator.evaluate(NOW - 41 * 86_400_000_000).sizes() == {"buyers": 0, "idle": 4}


def test_most_frequent_ties_go_to_the_value_seen_last() -> None:
    trait = parse_computed_trait({"id": "favorite", "event": "Product Viewed", "most_frequent": "category"})
    rows = [
        ("a", NOW - 50, 1, "Product Viewed", {"category": "bags"}),
        ("a", NOW - 40, 2, "Product Viewed", {"category": "shoes"}),
        ("a", NOW - 30, 3, "Product Viewed", {"category": "shoes"}),
        ("a", NOW - 20, 5, "Product Viewed", {"category": "bags"}),
        ("a", NOW - 20, 4, "Product Viewed", {"category": "tents"}),
    ]  # same moment, earlier seq
    first = parse_computed_trait({"id": "first", "event": "Product Viewed", "first": "category"})
    last = parse_computed_trait({"id": "last", "event": "Product Viewed", "last": "category"})
    evaluator = BatchEvaluator([], [trait, first, last])
    evaluator.load(evaluator.event_batches(rows), evaluator.profile_table({"a": {}}))
    assert evaluator.evaluate(NOW).profiles()["a"] == (set(), {"favorite": "bags", "first": "bags", "last": "bags"})
    assert evaluator.evaluate(NOW - 25).profiles()["a"] == (set(), {"favorite": "shoes", "first": "bags",
                                                                     "last": "shoes"})


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not (isinstance(a, bool) or isinstance(b, bool)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)
