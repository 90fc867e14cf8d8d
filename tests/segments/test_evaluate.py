"""The reference meaning of the language on hand-built profiles: the oracle the evaluators must match."""

from __future__ import annotations

from typing import Any

import pytest

from persona.segments.definitions import Comparison, parse_computed_trait, parse_segment
from persona.segments.evaluate import MICROS, EventFact, ProfileFacts, aggregate, compare, matches
from tests.segments.test_definitions import EXAMPLES

DAY = 86_400 * MICROS
NOW = 1_000 * DAY
_seq = iter(range(1, 10**6))


def happened(days_ago: float, name: str, **properties: Any) -> EventFact:
    return EventFact(NOW - int(days_ago * DAY), next(_seq), name, properties)


def segment(segment_id: str) -> Any:
    return parse_segment(next(s for s in EXAMPLES["segments"] if s["id"] == segment_id)).where


def trait(trait_id: str) -> Any:
    return parse_computed_trait(next(t for t in EXAMPLES["computed_traits"] if t["id"] == trait_id)).of


def test_purchased_over_500_in_30_days_and_viewed_three_products() -> None:
    buys = [happened(3, "Order Completed", revenue=300), happened(20, "Order Completed", revenue=250),
            happened(45, "Order Completed", revenue=1000)]  # outside the window
    views = [happened(d, "Product Viewed") for d in (1, 2, 29)]
    assert matches(segment("big_spenders"), ProfileFacts(events=[*buys, *views]), NOW)
    assert not matches(segment("big_spenders"), ProfileFacts(events=[*buys, *views[:2]]), NOW)
    assert not matches(segment("big_spenders"), ProfileFacts(events=[*buys[1:], *views]), NOW)
    # the same history seen 10 days later: the $300 and a view have left the window
    assert not matches(segment("big_spenders"), ProfileFacts(events=[*buys, *views]), NOW + 10 * DAY)


def test_no_purchase_in_90_days_becomes_true_with_time_alone() -> None:
    facts = ProfileFacts(events=[happened(80, "Order Completed", revenue=10)])
    assert not matches(segment("lapsed"), facts, NOW)
    assert matches(segment("lapsed"), facts, NOW + 11 * DAY)
    assert matches(segment("lapsed"), ProfileFacts(), NOW)  # never bought at all


def test_added_to_cart_in_the_last_hour_without_an_order() -> None:
    added = happened(0.5 / 24, "Product Added")
    assert matches(segment("cart_abandoners"), ProfileFacts(events=[added]), NOW)
    ordered = happened(0.2 / 24, "Order Completed")
    assert not matches(segment("cart_abandoners"), ProfileFacts(events=[added, ordered]), NOW)
    assert not matches(segment("cart_abandoners"), ProfileFacts(events=[added]), NOW + DAY // 24)


def test_traits_segments_and_computed_traits() -> None:
    pro = {"plan": "pro", "age": 34, "country": "AT", "email": "ann@example.com"}
    assert matches(segment("young_dach_pros"), ProfileFacts(traits=pro), NOW)
    assert not matches(segment("young_dach_pros"), ProfileFacts(traits={**pro, "age": 35}), NOW)
    assert not matches(segment("young_dach_pros"), ProfileFacts(traits={**pro, "country": "FR"}), NOW)
    assert matches(segment("young_dach_pros"),
                   ProfileFacts(traits={**pro, "email": "ann@else.org", "company": "ACME"}), NOW)
    assert not matches(segment("young_dach_pros"), ProfileFacts(traits={**pro, "email": "ann@else.org"}), NOW)
    loyal = segment("loyal_lapsed")
    assert matches(loyal, ProfileFacts(segments=frozenset({"lapsed"}), computed={"orders_90d": 3}), NOW)
    assert not matches(loyal, ProfileFacts(segments=frozenset({"lapsed"}), computed={"orders_90d": 2}), NOW)
    assert not matches(loyal, ProfileFacts(computed={"orders_90d": 5}), NOW)


def test_property_filters() -> None:
    shoes = segment("shoe_buyers")
    assert matches(shoes, ProfileFacts(events=[happened(400, "Order Completed", category="shoes", revenue=30)]), NOW)
    assert not matches(shoes, ProfileFacts(events=[happened(1, "Order Completed", category="shoes", revenue=10)]),
                       NOW)
    assert not matches(shoes, ProfileFacts(events=[happened(1, "Order Completed", category="hats", revenue=99)]),
                       NOW)


def test_aggregates() -> None:
    views = [happened(1, "Product Viewed", category="shoes"), happened(2, "Product Viewed", category="hats"),
             happened(3, "Product Viewed", category="hats"), happened(4, "Product Viewed", category="shoes"),
             happened(40, "Product Viewed", category="socks"), happened(5, "Product Viewed")]
    assert aggregate(trait("favorite_category"), views, NOW) == "shoes"  # 2 each; shoes seen last
    orders = [happened(10, "Order Completed", revenue=10), happened(100, "Order Completed", revenue=30),
              happened(5, "Order Completed", revenue="n/a")]
    assert aggregate(trait("avg_order_value"), orders, NOW) == 20.0  # the text is not a number
    assert aggregate(trait("orders_90d"), orders, NOW) == 2
    assert aggregate(trait("avg_order_value"), [], NOW) is None

    def of(**raw: Any) -> Any:
        return parse_computed_trait({"id": "t", "event": "Product Viewed", **raw}).of

    assert aggregate(of(distinct="category"), views, NOW) == 3
    assert aggregate(of(count="category"), views, NOW) == 5  # the view without one does not count
    assert aggregate(of(first="category", within="30d"), views, NOW) == "shoes"  # 4 days ago
    assert aggregate(of(last="category"), views, NOW) == "shoes"
    assert aggregate(of(sum="category"), views, NOW) == 0.0
    future = [happened(-1, "Product Viewed", category="x")]  # stamped tomorrow: not yet
    assert aggregate(of(count=True), future, NOW) == 0


@pytest.mark.parametrize(("op", "expected", "value", "result"), [
    ("eq", 5, 5.0, True), ("eq", 5, "5", False), ("eq", 1, True, False), ("eq", True, True, True),
    ("ne", "pro", "free", True), ("ne", "pro", None, False),
    ("in", ("a", "b"), "b", True), ("not_in", ("a", "b"), "c", True), ("not_in", ("a",), None, False),
    ("gt", 3, 4, True), ("gt", 3, "4", False), ("between", (1, 2), 2, True), ("lte", 2, 2.5, False),
    ("exists", True, 0, True), ("exists", False, None, True), ("exists", True, None, False),
    ("contains", "ex", "next", True), ("contains", "vip", ["vip", "beta"], True), ("contains", 1, [1.0], True),
    ("regex", r"^\d+$", "123", True), ("regex", r"^\d+$", 123, False),
])
def test_comparisons(op: str, expected: Any, value: Any, result: bool) -> None:
    assert compare(Comparison(op, expected), value) is result
