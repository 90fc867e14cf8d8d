"""The audience language: what it accepts, and that every mistake is refused where it is."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from persona.segments.definitions import (
    All,
    AnyOf,
    Comparison,
    ComputedCondition,
    DefinitionError,
    EventAggregate,
    EventCondition,
    Not,
    PropertyFilter,
    SegmentCondition,
    TraitCondition,
    check_references,
    parse_computed_trait,
    parse_duration,
    parse_segment,
)

EXAMPLES = yaml.safe_load("""
segments:
  - id: big_spenders
    name: Purchased over $500 in the last 30 days and viewed at least 3 product pages
    where:
      all:
        - {event: Order Completed, within: 30d, sum: revenue, gt: 500}
        - {event: Product Viewed, within: 30d, count: true, gte: 3}
  - id: lapsed
    name: No purchase in 90 days
    where: {not: {event: Order Completed, within: 90d}}
  - id: cart_abandoners
    where:
      all:
        - {event: Product Added, within: 1h}
        - not: {event: Order Completed, within: 1h}
  - id: young_dach_pros
    where:
      all:
        - {trait: plan, eq: pro}
        - {trait: age, between: [25, 34]}
        - {trait: country, in: [DE, AT, CH]}
        - any:
            - {trait: email, regex: '@example\\.com$'}
            - {trait: company, exists: true}
  - id: loyal_lapsed
    where:
      all:
        - {segment: lapsed}
        - {computed: orders_90d, gte: 3}
  - id: shoe_buyers
    where:
      event: Order Completed
      where: [{property: category, eq: shoes}, {property: revenue, gt: 20}]
computed_traits:
  - {id: orders_90d, event: Order Completed, within: 90d, count: true}
  - {id: avg_order_value, event: Order Completed, avg: revenue}
  - {id: favorite_category, event: Product Viewed, within: 30d, most_frequent: category}
""")


def segments() -> dict[str, Any]:
    return {s["id"]: s for s in EXAMPLES["segments"]}


def test_the_examples_parse_into_what_they_say() -> None:
    parsed = {s["id"]: parse_segment(s) for s in EXAMPLES["segments"]}
    big = parsed["big_spenders"].where
    assert big == All((
        EventCondition(EventAggregate("Order Completed", 30 * 86_400, (), "sum", "revenue"), Comparison("gt", 500)),
        EventCondition(EventAggregate("Product Viewed", 30 * 86_400, (), "count", None), Comparison("gte", 3)),
    ))
    assert parsed["big_spenders"].name.startswith("Purchased over $500")
    # "did it" and "did not": an event with no aggregate is "at least once", under not "never"
    assert parsed["lapsed"].where == Not(EventCondition(
        EventAggregate("Order Completed", 90 * 86_400, (), "count", None), Comparison("gte", 1)))
    assert parsed["lapsed"].name == "No purchase in 90 days"
    assert parsed["cart_abandoners"].name == "cart_abandoners"  # the id when no name is given
    pros = parsed["young_dach_pros"].where
    assert isinstance(pros, All) and pros.conditions[1] == TraitCondition("age", Comparison("between", (25, 34)))
    assert pros.conditions[2] == TraitCondition("country", Comparison("in", ("DE", "AT", "CH")))
    assert isinstance(pros.conditions[3], AnyOf)
    assert parsed["loyal_lapsed"].where == All((SegmentCondition("lapsed"),
                                                ComputedCondition("orders_90d", Comparison("gte", 3))))
    shoes = parsed["shoe_buyers"].where
    assert isinstance(shoes, EventCondition)
    assert shoes.of.where == (PropertyFilter("category", Comparison("eq", "shoes")),
                              PropertyFilter("revenue", Comparison("gt", 20)))
    traits = {t["id"]: parse_computed_trait(t) for t in EXAMPLES["computed_traits"]}
    assert traits["favorite_category"].of == EventAggregate("Product Viewed", 30 * 86_400, (), "most_frequent",
                                                            "category")
    assert traits["avg_order_value"].of.within is None
    check_references(parsed.values(), traits.values(),
                     known_events={"Order Completed", "Product Viewed", "Product Added"})


def test_durations() -> None:
    assert [parse_duration(d, "w") for d in ("90s", "15m", "1h", "30d", "2w")] == [90, 900, 3600, 2_592_000, 1_209_600]
    for bad in ("30", "0d", "1y", "-1d", 30, None):
        with pytest.raises(DefinitionError, match="not a duration") as caught:
            parse_duration(bad, "where.within")
        assert caught.value.field == "where.within"


@pytest.mark.parametrize(("condition", "field", "message"), [
    ({"trait": "plan", "equals": "pro"}, "where.equals", "unknown field 'equals'"),
    ({"trait": "plan"}, "where", "exactly one comparison"),
    ({"trait": "plan", "eq": "pro", "ne": "free"}, "where", "found eq, ne"),
    ({"trait": "age", "between": [34, 25]}, "where.between", "low <= high"),
    ({"trait": "age", "between": [25]}, "where.between", "two numbers"),
    ({"trait": "age", "gt": "old"}, "where.gt", "number"),
    ({"trait": "country", "in": []}, "where.in", "non-empty list"),
    ({"trait": "company", "exists": "yes"}, "where.exists", "true or false"),
    ({"trait": "email", "regex": "(unclosed"}, "where.regex", "not a valid regular expression"),
    ({"trait": "plan", "eq": {"nested": 1}}, "where.eq", "plain value"),
    ({"all": []}, "where.all", "non-empty list"),
    ({"all": [{"trait": "a", "eq": 1}, {"event": "X", "within": "a month"}]}, "where.all[1].within", "duration"),
    ({"any": [{"not": {"trait": "a", "eq": 1, "extra": 2}}]}, "where.any[0].not.extra", "unknown field"),
    ({"trait": "a", "eq": 1, "event": "X"}, "where", "exactly one of"),
    ({}, "where", "exactly one of"),
    ("plan == pro", "where", "expected an object"),
    ({"event": "Order Completed", "sum": "revenue"}, "where", "compare the sum"),
    ({"event": "Order Completed", "sum": "revenue", "count": True, "gt": 1}, "where", "one aggregate"),
    ({"event": "Order Completed", "sum": True, "gt": 1}, "where.sum", "names the property"),
    ({"event": "Order Completed", "sum": "revenue", "eq": "a lot"}, "where.eq", "number"),
    ({"event": "Order Completed", "count": True, "regex": "x"}, "where.regex", "tests text"),
    ({"event": "Order Completed", "median": "revenue", "gt": 1}, "where.median", "unknown field"),
    ({"event": "Order Completed", "where": {"property": "x", "eq": 1}}, "where.where", "list of property filters"),
    ({"event": "Order Completed", "where": [{"eq": 1}]}, "where.where[0].property", "names the event `property`"),
    ({"segment": "Big Spenders"}, "where.segment", "not an id"),
    ({"event": ""}, "where.event", "expected a name"),
])
def test_every_mistake_is_refused_at_its_place(condition: Any, field: str, message: str) -> None:
    with pytest.raises(DefinitionError, match=message) as caught:
        parse_segment({"id": "s", "where": condition})
    assert caught.value.field == field
    assert caught.value.status == 400 and caught.value.code == "invalid_definition"


def test_a_segment_needs_an_id_and_a_condition() -> None:
    with pytest.raises(DefinitionError) as no_id:
        parse_segment({"where": {"trait": "a", "eq": 1}})
    assert no_id.value.field == "id"
    with pytest.raises(DefinitionError) as no_where:
        parse_segment({"id": "s"})
    assert no_where.value.field == "where"
    with pytest.raises(DefinitionError, match="unknown field 'filter'"):
        parse_segment({"id": "s", "filter": {}})


def test_a_computed_trait_is_an_aggregate_without_a_comparison() -> None:
    with pytest.raises(DefinitionError, match="choose an aggregate"):
        parse_computed_trait({"id": "t", "event": "Order Completed"})
    with pytest.raises(DefinitionError, match="unknown field 'gt'") as caught:
        parse_computed_trait({"id": "t", "event": "Order Completed", "count": True, "gt": 1})
    assert caught.value.field == "gt"
    with pytest.raises(DefinitionError, match="give `event`"):
        parse_computed_trait({"id": "t", "count": True})


def test_references_must_exist_and_not_loop() -> None:
    def check(*raw: dict[str, Any], computed: tuple[dict[str, Any], ...] = (), events: set[str] | None = None) -> None:
        check_references([parse_segment(r) for r in raw], [parse_computed_trait(c) for c in computed], events)

    with pytest.raises(DefinitionError, match="unknown segment 'gone'") as caught:
        check({"id": "a", "where": {"all": [{"trait": "x", "eq": 1}, {"segment": "gone"}]}})
    assert caught.value.field == "a.where.all[1]"
    with pytest.raises(DefinitionError, match="unknown computed trait 'orders'"):
        check({"id": "a", "where": {"computed": "orders", "gt": 1}})
    with pytest.raises(DefinitionError, match="a -> b -> c -> a"):
        check({"id": "a", "where": {"segment": "b"}}, {"id": "b", "where": {"not": {"segment": "c"}}},
              {"id": "c", "where": {"any": [{"segment": "a"}, {"trait": "x", "exists": True}]}})
    with pytest.raises(DefinitionError, match="no event named 'Order Complete' has been seen"):
        check({"id": "a", "where": {"event": "Order Complete"}}, events={"Order Completed"})
    with pytest.raises(DefinitionError, match="names both a segment and a computed trait"):
        check({"id": "a", "where": {"trait": "x", "exists": True}},
              computed=({"id": "a", "event": "X", "count": True},))
    check({"id": "a", "where": {"segment": "b"}}, {"id": "b", "where": {"trait": "x", "exists": True}})
