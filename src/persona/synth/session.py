"""Simulate one customer's events: sessions of browsing, carts, checkouts, sign-up, refunds.

A `Shopper` walks through the sessions its `CustomerPlan` scheduled and appends `Record`s
(epoch ms, message, context parts) to a shared list. Events inside a session are strictly
time-ordered; refunds are appended when the order happens but stamped days later, so the
caller must sort (the workload sorts each block). Cart and checkout live in `checkout`. Every random draw comes from the
customer's own RNG, which is what makes the output reproducible.
"""

from __future__ import annotations

import random
from bisect import bisect
from typing import Any

from persona.synth.catalog import Catalog, Product
from persona.synth.checkout import cart_and_checkout
from persona.synth.customers import CustomerPlan
from persona.synth.ids import MS_PER_DAY, IsoClock, documentation_ip, uuid4_from
from persona.synth.messages import (
    SHOP_URL,
    Cart,
    DeviceContext,
    Record,
    category_path,
    line_item,
    list_item,
    viewed_properties,
)
from persona.synth.vocab import LOCALES, REFERRERS

LIST_LENGTH = 8  # products shown on a category page
CART_TTL_MS = 10 * MS_PER_DAY  # older carts are forgotten; the next add starts a new one
_MOBILE_TYPES = frozenset({"ios", "android", "mobile"})
_SIGNUP_METHODS = ("email", "email", "email", "google", "apple")


class Shopper:
    """Generates every message of one customer into `out`."""

    def __init__(self, plan: CustomerPlan, rng: random.Random, catalog: Catalog, clock: IsoClock,
                 out: list[Record], end_ms: int) -> None:
        self.plan = plan
        self.customer = plan.customer
        self.rng = rng
        self.catalog = catalog
        self.clock = clock
        self.out = out
        self.end_ms = end_ms
        locale = LOCALES.get(plan.city.country, "en-US")
        self.contexts = [DeviceContext(d, locale, plan.city.timezone) for d in plan.devices]
        self.carts: list[Cart | None] = [None] * len(plan.devices)
        self.signed_up = False
        self.orders = 0
        # Per-session state, reset by `_session`.
        self.t = 0
        self.dev = 0
        self.ctx = self.contexts[0]
        self.ip = ""
        self.user_id: str | None = None
        self.email: str | None = None
        self.page: dict[str, str] | None = None
        self.entry_referrer = ""
        self.campaign: dict[str, str] | None = None

    def run(self) -> None:
        for index, (start, device) in enumerate(self.plan.sessions):
            self._session(index, start, device)

    # -- sessions ---------------------------------------------------------------------------
    def _session(self, index: int, start: int, dev: int) -> None:
        rng, plan = self.rng, self.plan
        device = plan.devices[dev]
        self.t, self.dev, self.ctx, self.page = start, dev, self.contexts[dev], None
        if device.model.type in _MOBILE_TYPES and rng.random() < 0.3:
            device.ip = documentation_ip(rng)  # mobile networks hand out new addresses often
        self.ip = device.ip
        self.user_id = self.customer.user_id if device.logged_in else None
        self.email = self.customer.email if device.logged_in else None
        self.entry_referrer, self.campaign = "", None
        if self.ctx.is_web:
            referrer, source, medium = REFERRERS[rng.randrange(len(REFERRERS))]
            self.entry_referrer = referrer
            if source:
                self.campaign = {"name": "fall-collection", "source": source, "medium": medium}

        cart = self.carts[dev]
        if cart is not None and start - cart.opened_ms > CART_TTL_MS:
            self.carts[dev] = cart = None
        # A shopper back for a cart left earlier browses less and is likelier to buy.
        resumed = cart is not None and bool(cart.items) and rng.random() < 0.4
        actions = 1 + int(rng.expovariate(1.0 / plan.depth))
        if resumed:
            actions = min(actions, 2)
        signup_at = rng.randrange(actions) if index == plan.signup_session else -1
        login_at = min(rng.randrange(3), actions - 1) if self.signed_up and not device.logged_in else -1

        if self.ctx.is_web:
            self._landing()
        for k in range(actions):
            if k == signup_at:
                self._sign_up()
            if k == login_at:
                self.log_in()
            roll = rng.random()
            if roll < 0.22:
                self._search()
            elif roll < 0.6:
                self._browse_category(self._choose_leaf())
            else:
                self._view(self._choose_product(self._choose_leaf()))
        cart = self.carts[dev]
        if cart is not None and cart.items:
            cart_and_checkout(self, cart, resumed)

    def _landing(self) -> None:
        """Half of web visits start on the home page; the rest land deep, from search or ads."""
        if self.rng.random() < 0.5:
            self.page_view("Home", "/", "Persona Shop")
            self.think()

    # -- browsing ---------------------------------------------------------------------------
    def _choose_leaf(self) -> str:
        rng, plan = self.rng, self.plan
        if rng.random() < plan.focus:
            group = plan.tastes[bisect(plan.taste_cum, rng.random() * plan.taste_cum[-1])]
        else:
            group = self.catalog.pick_group(rng)
        return self.catalog.pick_leaf(group, rng)

    def _choose_product(self, leaf: str) -> Product:
        product = self.catalog.pick_product(leaf, self.rng)
        if self.rng.random() < self.customer.price_sensitivity:
            # Price hunters compare two options and keep the cheaper one.
            other = self.catalog.pick_product(leaf, self.rng)
            if other.price < product.price:
                product = other
        return product

    def _search(self) -> None:
        rng = self.rng
        target = self._choose_product(self._choose_leaf())
        query = self._query(target)
        if self.ctx.is_web:
            self.page_view("Search Results", "/search", f"Search: {query}", "?q=" + query.replace(" ", "+"))
        self.track("Products Searched", {"query": query})
        self.think()
        self._view(target)
        if rng.random() < 0.25:
            other = self._choose_product(target.category)
            if other.id != target.id:
                self._view(other)

    def _query(self, product: Product) -> str:
        leaf = product.category.rsplit(" > ", 1)[-1].lower()
        roll = self.rng.random()
        if roll < 0.4:
            return leaf
        if roll < 0.65:
            return f"{product.brand} {leaf}".lower()
        if roll < 0.85:
            return product.name.lower()
        return f"{'cheap' if self.customer.price_sensitivity > 0.6 else 'best'} {leaf}"

    def _browse_category(self, leaf: str) -> None:
        rng = self.rng
        shown = self.catalog.leaf_products[leaf][:LIST_LENGTH]
        path = category_path(leaf)
        if self.ctx.is_web:
            self.page_view("Category", path, leaf.rsplit(" > ", 1)[-1])
        self.track("Product List Viewed", {
            "list_id": path.removeprefix("/c/"),
            "category": leaf,
            "products": [list_item(p, i) for i, p in enumerate(shown, start=1)],
        })
        self.think()
        views = 1 + (rng.random() < 0.35) + (rng.random() < 0.1)
        seen: set[str] = set()
        for _ in range(views):
            product = self._choose_product(leaf)
            if product.id in seen:  # one more try: people open a different item next
                product = self._choose_product(leaf)
                if product.id in seen:
                    break
            seen.add(product.id)
            self._view(product)

    def _view(self, product: Product) -> None:
        rng = self.rng
        if self.ctx.is_web:
            self.page_view("Product", f"/p/{product.id}", product.name)
        self.track("Product Viewed", viewed_properties(product))
        self.think()
        if product.in_stock and rng.random() < self._add_chance(product):
            quantity = 1
            if product.price < 40 and rng.random() < 0.2:
                quantity = 2 if rng.random() < 0.75 else 3
            cart = self.carts[self.dev]
            if cart is None:
                cart = self.carts[self.dev] = Cart(uuid4_from(rng), self.t)
            cart.add(product, quantity)
            self.track("Product Added", {"cart_id": cart.id, **line_item(product, quantity)})
            self.think()

    def _add_chance(self, product: Product) -> float:
        """Tastes lift, price (relative to the product's category) deters the price-sensitive."""
        affinity = 1.3 if self.catalog.group_of[product.id] in self.plan.tastes else 0.75
        price_fit = 1.15 - self.customer.price_sensitivity * self.catalog.price_rank[product.id]
        return min(0.14 * self.plan.buy_propensity * affinity * price_fit, 0.8)

    # -- identity ---------------------------------------------------------------------------
    def _sign_up(self) -> None:
        rng, customer = self.rng, self.customer
        device = self.plan.devices[self.dev]
        if self.ctx.is_web:
            self.page_view("Sign Up", "/signup", "Create your account")
            self.think()
        self.signed_up = device.logged_in = True
        self.user_id, self.email = customer.user_id, customer.email
        if not self.ctx.is_web and rng.random() < 0.35:
            # Older mobile integrations alias the install's anonymous id to the new user.
            self.emit("alias", {"previousId": device.anonymous_id})
            self.t += 50 + rng.randrange(200)
        self.emit("identify", {"traits": {
            "email": customer.email, "first_name": customer.first_name, "last_name": customer.last_name,
            "name": f"{customer.first_name} {customer.last_name}", "created_at": self.clock(self.t),
            "city": customer.city, "country": customer.country, "plan": self.plan.plan_tier,
        }})
        self.t += 50 + rng.randrange(300)
        self.track("Signed Up", {"type": _SIGNUP_METHODS[rng.randrange(len(_SIGNUP_METHODS))],
                                  "email": customer.email, "first_name": customer.first_name,
                                  "last_name": customer.last_name})
        self.think()

    def log_in(self) -> None:
        device = self.plan.devices[self.dev]
        if self.ctx.is_web:
            self.page_view("Log In", "/login", "Log in")
            self.think()
        device.logged_in = True
        self.user_id, self.email = self.customer.user_id, self.customer.email
        self.emit("identify", {"traits": {"email": self.email}})
        self.think()

    # -- emission (also used by `checkout`) ---------------------------------------------------
    def think(self) -> None:
        """Time a shopper spends on a page before the next action."""
        self.t += 3_000 + int(self.rng.expovariate(1 / 25_000))

    def page_view(self, name: str, path: str, title: str, search: str = "") -> None:
        url = f"{SHOP_URL}{path}{search}"
        if self.page is None:
            referrer = self.entry_referrer
        else:
            referrer = self.page["url"]
            self.campaign = None  # utm parameters live on the landing URL only
        self.page = page = {"path": path, "referrer": referrer, "search": search, "title": title, "url": url}
        self.emit("page", {"name": name, "properties": {"name": name, **page}})
        self.t += 150 + self.rng.randrange(700)  # the page's track call follows its load

    def track(self, event: str, properties: dict[str, Any]) -> None:
        self.emit("track", {"event": event, "properties": properties})

    def emit(self, kind: str, body: dict[str, Any]) -> None:
        # "timestamp" and "context" are filled in by `finish`; the placeholder keeps key order.
        msg = {"type": kind, "messageId": uuid4_from(self.rng), "timestamp": "",
               "anonymousId": self.plan.devices[self.dev].anonymous_id}
        if self.user_id is not None:
            msg["userId"] = self.user_id
        msg.update(body)
        self.out.append((self.t, msg, self.ctx, self.ip, self.page, self.email, self.campaign))
