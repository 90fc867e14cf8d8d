"""Segment message pieces: per-device `context`, e-commerce property blocks, order maths.

Builders return fresh dicts every call (shallow copies of per-device templates), so a
consumer that mutates one message can never change another. Only JSON types are used.
"""

from __future__ import annotations

from typing import Any

from persona.synth.catalog import Product
from persona.synth.customers import Device
from persona.synth.ids import IsoClock

SHOP_URL = "https://shop.example.com"
APP_NAME = "Persona Shop"
CURRENCY = "USD"
TAX_RATE = 0.08
FREE_SHIPPING_FROM = 50.0
SHIPPING_FEE = 5.99
SERVER_LIBRARY = {"name": "analytics-python", "version": "2.4.0"}

# Coupon code -> fraction off the merchandise subtotal.
COUPONS: dict[str, float] = {"WELCOME10": 0.10, "FALL15": 0.15, "VIP20": 0.20, "FREESHIP": 0.0}


class DeviceContext:
    """The parts of `context` that stay the same for every message from one device."""

    __slots__ = ("app", "device", "is_web", "library", "locale", "os", "timezone", "user_agent")

    def __init__(self, device: Device, locale: str, timezone: str) -> None:
        model = device.model
        self.is_web = model.platform == "web"
        self.device = {"id": device.id, "type": model.type, "model": model.model,
                       "manufacturer": model.manufacturer}
        self.os = {"name": model.os_name, "version": model.os_version}
        self.library = {"name": model.library, "version": model.library_version}
        self.app = None if self.is_web else {"name": APP_NAME, "version": "3.12.0", "build": "3120"}
        self.user_agent = model.user_agent
        self.locale = locale
        self.timezone = timezone

    def build(self, ip: str, page: dict[str, str] | None, email: str | None,
              campaign: dict[str, str] | None) -> dict[str, Any]:
        """A fresh `context`; `email` adds `traits` for logged-in shoppers."""
        ctx: dict[str, Any] = {
            "device": dict(self.device),
            "os": dict(self.os),
            "library": dict(self.library),
            "userAgent": self.user_agent,
            "ip": ip,
            "locale": self.locale,
            "timezone": self.timezone,
        }
        if self.app is not None:
            ctx["app"] = dict(self.app)
        if page is not None:
            ctx["page"] = dict(page)
        if campaign is not None:
            ctx["campaign"] = dict(campaign)
        if email is not None:
            ctx["traits"] = {"email": email}
        return ctx


def server_context() -> dict[str, Any]:
    """Context of back-office events (refunds): just the server library."""
    return {"library": dict(SERVER_LIBRARY)}


# An event as simulated: (epoch ms, message without timestamp/context, then what `finish`
# needs to add them). Building `context` only when a message is handed out halves the
# memory a block of customers holds while it is being sorted.
Record = tuple[int, dict[str, Any], DeviceContext | None, str, dict[str, str] | None, str | None,
               dict[str, str] | None]


def finish(record: Record, clock: IsoClock) -> dict[str, Any]:
    """Complete a simulated message with its timestamp and a fresh `context`."""
    t, msg, device_context, ip, page, email, campaign = record
    msg["timestamp"] = clock(t)
    if device_context is None:
        msg["context"] = server_context()  # back-office events carry no device
    else:
        msg["context"] = device_context.build(ip, page, email, campaign)
    return msg


def viewed_properties(product: Product) -> dict[str, Any]:
    """`Product Viewed` properties."""
    return {"product_id": product.id, "sku": product.id, "name": product.name, "category": product.category,
            "brand": product.brand, "price": product.price, "currency": CURRENCY,
            "url": f"{SHOP_URL}/p/{product.id}"}


def line_item(product: Product, quantity: int) -> dict[str, Any]:
    """A product as it appears in carts and orders."""
    return {"product_id": product.id, "sku": product.id, "name": product.name, "category": product.category,
            "brand": product.brand, "price": product.price, "quantity": quantity}


def list_item(product: Product, position: int) -> dict[str, Any]:
    """A product as it appears in `Product List Viewed` (1-based position)."""
    return {"product_id": product.id, "sku": product.id, "name": product.name, "category": product.category,
            "brand": product.brand, "price": product.price, "position": position}


class Cart:
    """An open shopping cart on one device: product id -> (product, quantity), insertion-ordered."""

    __slots__ = ("id", "items", "opened_ms")

    def __init__(self, cart_id: str, opened_ms: int) -> None:
        self.id = cart_id
        self.opened_ms = opened_ms
        self.items: dict[str, tuple[Product, int]] = {}

    def add(self, product: Product, quantity: int) -> None:
        held = self.items.get(product.id)
        self.items[product.id] = (product, quantity + (held[1] if held else 0))

    def lines(self) -> list[dict[str, Any]]:
        return [line_item(product, quantity) for product, quantity in self.items.values()]

    def amounts(self, coupon: str | None) -> dict[str, float]:
        """Subtotal, discount, revenue, shipping, tax and total, rounded to cents.

        Follows the Segment spec: `revenue` excludes shipping and tax and is net of
        discounts; `total` is what the customer pays.
        """
        subtotal = round(sum(p.price * q for p, q in self.items.values()), 2)
        discount = round(subtotal * COUPONS.get(coupon, 0.0), 2) if coupon else 0.0
        revenue = round(subtotal - discount, 2)
        free = coupon == "FREESHIP" or revenue >= FREE_SHIPPING_FROM
        shipping = 0.0 if free else SHIPPING_FEE
        tax = round(revenue * TAX_RATE, 2)
        return {"subtotal": subtotal, "discount": discount, "revenue": revenue, "shipping": shipping,
                "tax": tax, "total": round(revenue + shipping + tax, 2)}


def slug(text: str) -> str:
    """URL path segment for a category name: "Coffee & Tea" -> "coffee-tea"."""
    out = []
    dash = False
    for ch in text.lower():
        if ch.isalnum():
            out.append(ch)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


def category_path(category: str) -> str:
    """`/c/outdoor/hiking/backpacks` for "Outdoor > Hiking > Backpacks"."""
    return "/c/" + "/".join(slug(part) for part in category.split(" > "))
