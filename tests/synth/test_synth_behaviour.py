"""Ground truth matches the messages, and shoppers behave like shoppers, not like dice."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from statistics import mean
from typing import Any

from persona.synth import Customer, Workload
from tests.synth.helpers import by_customer, customer_of, events


def _when(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00"))


def test_every_identifier_belongs_to_exactly_one_customer(synth_truth: list[Customer],
                                                          synth_messages: list[dict[str, Any]]) -> None:
    anonymous = Counter(a for c in synth_truth for a in c.anonymous_ids)
    assert all(n == 1 for n in anonymous.values())
    users = Counter(c.user_id for c in synth_truth if c.user_id is not None)
    assert all(n == 1 for n in users.values())
    used_anonymous = {m["anonymousId"] for m in synth_messages if "anonymousId" in m}
    assert used_anonymous == set(anonymous)  # every device of every customer shows up
    assert {m["userId"] for m in synth_messages if "userId" in m} == set(users)


def test_ground_truth_fields(synth_truth: list[Customer]) -> None:
    for c in synth_truth:
        assert len(c.anonymous_ids) == len(c.devices) >= 1
        assert c.signs_up == (c.user_id is not None) == (c.email is not None)
        if c.user_id is not None:
            assert c.user_id == f"u-{c.index:06d}" and c.email.endswith(("example.com", "example.net",
                                                                         "example.org"))
        else:
            assert len(c.devices) == 1  # anonymous devices could never be linked
        assert 0.0 <= c.price_sensitivity <= 1.0
        assert 1 <= len(c.favorite_categories) <= 3
        assert c.lapses == (c.lapsed_at is not None)


def test_identify_links_user_to_its_devices(synth_truth: list[Customer], synth_messages: list[dict[str, Any]],
                                            owner_of: dict[str, Customer]) -> None:
    linked: dict[str, set[str]] = {}
    for msg in synth_messages:
        if msg["type"] in ("identify", "alias"):
            customer = owner_of[msg["anonymousId"]]
            assert msg["userId"] == customer.user_id  # the anonymousId is one of the user's devices
            linked.setdefault(msg["userId"], set()).add(msg["anonymousId"])
    for c in synth_truth:
        if c.signs_up:
            assert linked[c.user_id] == set(c.anonymous_ids)  # every device ends up logged in
        else:
            assert c.user_id not in linked


def test_sign_up_sends_identify_with_profile_traits(synth_truth: list[Customer],
                                                    synth_messages: list[dict[str, Any]],
                                                    owner_of: dict[str, Customer]) -> None:
    signups = events(synth_messages, "Signed Up")
    assert len(signups) == sum(c.signs_up for c in synth_truth)
    full = [m for m in synth_messages if m["type"] == "identify" and "first_name" in m["traits"]]
    assert len(full) == len(signups)
    for msg in full:
        customer = owner_of[msg["userId"]]
        traits = msg["traits"]
        assert traits["email"] == customer.email and traits["city"] == customer.city
        assert traits["name"] == f"{customer.first_name} {customer.last_name}"
        assert traits["created_at"] == msg["timestamp"]


def test_behaviour_mix_is_realistic(synth_truth: list[Customer], synth_messages: list[dict[str, Any]],
                                    owner_of: dict[str, Customer]) -> None:
    n = len(synth_truth)
    assert 15 <= len(synth_messages) / n <= 40  # events per customer over 60 days
    assert 0.15 <= sum(not c.signs_up for c in synth_truth) / n <= 0.5
    assert sum(len(c.devices) > 1 for c in synth_truth) / n >= 0.05
    assert any(len(c.devices) == 3 for c in synth_truth)
    assert sum(c.lapses for c in synth_truth) / n >= 0.05
    kinds = Counter(m.get("event") or m["type"] for m in synth_messages)
    assert kinds["page"] > kinds["Order Completed"] * 5 and kinds["Products Searched"] > 0
    assert 0 < kinds["Order Refunded"] < kinds["Order Completed"] * 0.3
    assert kinds["Product Removed"] > 0 and kinds["alias"] > 0
    # Anonymous-only customers never carry a userId and are never identified.
    for msg in synth_messages:
        if not customer_of(msg, owner_of).signs_up:
            assert "userId" not in msg and msg["type"] in ("page", "track")


def test_some_carts_are_abandoned(synth_messages: list[dict[str, Any]]) -> None:
    carts = {m["properties"]["cart_id"] for m in events(synth_messages, "Product Added")}
    bought = {m["properties"]["cart_id"] for m in events(synth_messages, "Order Completed")}
    assert bought <= carts
    abandoned = len(carts - bought) / len(carts)
    assert 0.2 < abandoned < 0.9


def test_lapsed_customers_go_quiet(synth_workload: Workload, synth_truth: list[Customer],
                                  synth_messages: list[dict[str, Any]], owner_of: dict[str, Customer]) -> None:
    grouped = by_customer(synth_messages, owner_of)
    lapsed = [c for c in synth_truth if c.lapses]
    assert lapsed
    for c in lapsed:
        assert c.lapsed_at is not None and (synth_workload.end - c.lapsed_at).days >= 14
        # Refunds come from the back office and may still arrive; the shopper's own events stop.
        own = [m for m in grouped[c.index] if m.get("event") != "Order Refunded"]
        assert max(_when(m) for m in own) < c.lapsed_at


def test_tastes_and_price_sensitivity_drive_choices(synth_workload: Workload, synth_truth: list[Customer],
                                                    synth_messages: list[dict[str, Any]],
                                                    owner_of: dict[str, Customer]) -> None:
    catalog = synth_workload.catalog
    in_taste: list[float] = []
    for index, msgs in by_customer(synth_messages, owner_of).items():
        viewed = [catalog[m["properties"]["product_id"]] for m in events(msgs, "Product Viewed")]
        if len(viewed) >= 5:
            tastes = set(synth_truth[index].favorite_categories)
            in_taste.append(sum(p.group in tastes for p in viewed) / len(viewed))
    assert mean(in_taste) > 0.55  # far above the share any 1-3 of ~24 groups would get by chance

    def mean_price_rank(lo: float, hi: float) -> float:
        ranks = [catalog.price_rank[line["product_id"]]
                 for m in events(synth_messages, "Order Completed")
                 if lo <= customer_of(m, owner_of).price_sensitivity < hi
                 for line in m["properties"]["products"]]
        return mean(ranks)

    assert mean_price_rank(0.6, 1.01) < mean_price_rank(0.0, 0.3)


def test_popular_products_draw_most_views(synth_messages: list[dict[str, Any]]) -> None:
    views = Counter(m["properties"]["product_id"] for m in events(synth_messages, "Product Viewed"))
    ranked = [count for _, count in views.most_common()]
    assert sum(ranked[:15]) / sum(ranked) > 0.15  # the top 5% of products
