"""Every generated message is a valid Segment message, and the e-commerce numbers add up."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from persona.synth import Customer, Workload
from tests.synth.helpers import by_customer, customer_of, events

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO_MS_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
DOC_IP = re.compile(r"(192\.0\.2|198\.51\.100|203\.0\.113)\.\d{1,3}")
ECOMMERCE_EVENTS = {
    "Products Searched", "Product List Viewed", "Product Viewed", "Product Added", "Product Removed",
    "Cart Viewed", "Checkout Started", "Order Completed", "Order Refunded", "Signed Up",
}
LINE_KEYS = {"product_id", "sku", "name", "category", "brand", "price", "quantity"}


def _when(msg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(msg["timestamp"].replace("Z", "+00:00"))


def test_every_message_has_a_valid_envelope(synth_workload: Workload, synth_messages: list[dict[str, Any]]) -> None:
    assert synth_messages
    seen_ids: set[str] = set()
    for msg in synth_messages:
        assert msg["type"] in {"identify", "track", "page", "alias", "group"}
        assert UUID.fullmatch(msg["messageId"]), msg["messageId"]
        assert msg["messageId"] not in seen_ids
        seen_ids.add(msg["messageId"])
        assert msg.get("userId") or msg.get("anonymousId")
        assert ISO_MS_Z.fullmatch(msg["timestamp"]), msg["timestamp"]
        assert synth_workload.start <= _when(msg) < synth_workload.end
        assert isinstance(msg["context"], dict) and msg["context"]["library"]["name"]
        if msg["type"] == "track":
            assert msg["event"] and isinstance(msg["properties"], dict)
            assert msg["event"] in ECOMMERCE_EVENTS
        elif msg["type"] == "page":
            assert msg["name"] and msg["properties"]["url"].startswith("https://shop.example.com/")
        elif msg["type"] == "identify":
            assert msg["userId"] and msg["traits"]["email"]
        elif msg["type"] == "alias":
            assert msg["userId"] and msg["previousId"] == msg["anonymousId"]
        assert json.loads(json.dumps(msg)) == msg  # plain JSON types only


def test_client_context_describes_the_device(synth_messages: list[dict[str, Any]],
                                             owner_of: dict[str, Customer]) -> None:
    for msg in synth_messages:
        ctx = msg["context"]
        if ctx["library"]["name"] == "analytics-python":  # back-office refunds carry no device
            assert msg["event"] == "Order Refunded"
            continue
        assert {"id", "type", "model"} <= ctx["device"].keys()
        assert ctx["os"]["name"] and ctx["userAgent"]
        assert DOC_IP.fullmatch(ctx["ip"]), ctx["ip"]
        customer = customer_of(msg, owner_of)
        assert ctx["device"]["id"] == customer.devices[customer.anonymous_ids.index(msg["anonymousId"])]
        if ctx["library"]["name"] == "analytics.js":
            assert {"url", "path", "referrer"} <= ctx["page"].keys()
        if msg.get("userId"):  # logged in: analytics libraries attach the cached traits
            assert ctx["traits"] == {"email": customer.email}
        else:
            assert "traits" not in ctx


def test_product_properties_follow_the_ecommerce_spec(synth_workload: Workload,
                                                      synth_messages: list[dict[str, Any]]) -> None:
    catalog = synth_workload.catalog
    for msg in events(synth_messages, "Product Viewed"):
        props = msg["properties"]
        product = catalog[props["product_id"]]
        assert props["sku"] == product.id and props["currency"] == "USD"
        assert (props["name"], props["category"], props["brand"], props["price"]) == (
            product.name, product.category, product.brand, product.price)
    for name in ("Product Added", "Product Removed"):
        for msg in events(synth_messages, name):
            props = msg["properties"]
            assert LINE_KEYS | {"cart_id"} <= props.keys()
            assert catalog[props["product_id"]].in_stock and props["quantity"] >= 1
    for msg in events(synth_messages, "Product List Viewed"):
        listed = msg["properties"]["products"]
        assert listed and all(catalog[p["product_id"]].category == msg["properties"]["category"] for p in listed)
        assert [p["position"] for p in listed] == list(range(1, len(listed) + 1))
    assert all(m["properties"]["query"] for m in events(synth_messages, "Products Searched"))


def test_orders_add_up(synth_workload: Workload, synth_messages: list[dict[str, Any]]) -> None:
    catalog = synth_workload.catalog
    started = {m["properties"]["order_id"]: m for m in events(synth_messages, "Checkout Started")}
    orders = events(synth_messages, "Order Completed")
    assert orders
    for msg in orders:
        props = msg["properties"]
        assert props["currency"] == "USD" and props["products"]
        for line in props["products"]:
            assert line.keys() >= LINE_KEYS
            assert catalog[line["product_id"]].price == line["price"]
        subtotal = sum(line["price"] * line["quantity"] for line in props["products"])
        assert abs(props["revenue"] - (subtotal - props["discount"])) <= 0.01
        assert abs(props["total"] - (props["revenue"] + props["shipping"] + props["tax"])) <= 0.01
        assert (props["discount"] > 0) == ("coupon" in props and props["coupon"] != "FREESHIP")
        checkout = started[props["order_id"]]
        assert checkout["properties"]["cart_id"] == props["cart_id"]
        assert checkout["properties"]["revenue"] == props["revenue"]
        assert _when(checkout) < _when(msg)
    assert any("coupon" in m["properties"] for m in orders)
    assert any("coupon" not in m["properties"] for m in orders)


def test_refunds_refer_to_earlier_orders_of_the_same_customer(
        synth_messages: list[dict[str, Any]], owner_of: dict[str, Customer]) -> None:
    orders = {m["properties"]["order_id"]: m for m in events(synth_messages, "Order Completed")}
    refunds = events(synth_messages, "Order Refunded")
    assert refunds
    for refund in refunds:
        order = orders[refund["properties"]["order_id"]]
        assert customer_of(refund, owner_of) is customer_of(order, owner_of)
        assert _when(refund) - _when(order) >= timedelta(days=2)
        ordered = {(p["product_id"], p["quantity"]) for p in order["properties"]["products"]}
        returned = {(p["product_id"], p["quantity"]) for p in refund["properties"]["products"]}
        assert returned and returned <= ordered
        assert 0 < refund["properties"]["total"] <= order["properties"]["total"]


def test_stream_is_time_ordered_within_each_block(synth_workload: Workload,
                                                  synth_messages: list[dict[str, Any]],
                                                  owner_of: dict[str, Customer]) -> None:
    block_of = [customer_of(m, owner_of).index // synth_workload.block_size for m in synth_messages]
    assert block_of == sorted(block_of)  # blocks come one after another
    for block in set(block_of):
        stamps = [m["timestamp"] for m, b in zip(synth_messages, block_of, strict=True) if b == block]
        assert stamps == sorted(stamps)
    # Within a customer, events are time-ordered and sessions happen on several days.
    grouped = by_customer(synth_messages, owner_of)
    multi_day = sum(len({m["timestamp"][:10] for m in msgs}) > 1 for msgs in grouped.values())
    assert multi_day / len(grouped) > 0.4
