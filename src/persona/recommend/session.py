"""The browsing session, read when a list is asked for: what the user did in the last minutes
re-ranks their recommendations at once, with no retrain.

The session is the profile's latest events on its timeline (what the folds have applied, so an
event counts a moment after it is processed) within `SESSION_WINDOW`. Then:

- items in the cart (added and not removed since) or bought in the session leave the list;
- items bought together with what is in the cart rise most ("goes with X in your cart"),
  items like the ones just viewed rise too ("because you just viewed X");
- the latest events weigh most: each earlier one half as much as the one after it.

Scores from the trained list are scaled to 0..1 first, so a session boost of 1 equals the
best item of the trained list.
"""

from __future__ import annotations

from dataclasses import dataclass

from persona.errors import NotFound
from persona.log.store import EventLog
from persona.profiles.sql import SQLStateStore
from persona.recommend.models import Scored
from persona.recommend.modelset import ModelSet

SESSION_WINDOW = 30 * 60   # seconds
SESSION_EVENTS = 50        # the latest events looked at
NEIGHBOURS = 20            # per session item
CART_WEIGHT = 2.0          # an add to cart says more than a view
VIEW_EVENTS = frozenset({"Product Viewed", "Product Clicked"})
CART_ADDED, CART_REMOVED, ORDER = "Product Added", "Product Removed", "Order Completed"


@dataclass(frozen=True)
class Session:
    viewed: list[str]        # most recent first, no repeats
    cart: list[str]          # most recent first: added, not removed since
    bought: frozenset[str]   # in an order completed in the session

    @property
    def empty(self) -> bool:
        return not (self.viewed or self.cart or self.bought)


def current_session(state: SQLStateStore, log: EventLog, root: str, now: int) -> Session:
    """What the profile did in the last `SESSION_WINDOW` seconds before `now` (µs)."""
    since = now - SESSION_WINDOW * 1_000_000
    seqs = [seq for ts, seq in state.timeline(root, None, SESSION_EVENTS) if since <= ts <= now]
    events = sorted(log.get(seqs), key=lambda e: (e.timestamp, e.seq))
    viewed: list[str] = []
    cart: list[str] = []
    bought: set[str] = set()
    for event in events:  # oldest first, so a later event overrides an earlier one
        properties = event.body.get("properties")
        if event.type != "track" or not isinstance(properties, dict):
            continue
        if event.name == ORDER:
            lines = properties.get("products")
            for line in lines if isinstance(lines, list) else []:
                if (item := _item_id(line)) is not None:
                    bought.add(item)
            continue
        item = _item_id(properties)
        if item is None:
            continue
        if event.name in VIEW_EVENTS:
            viewed = [item, *(i for i in viewed if i != item)]
        elif event.name == CART_ADDED:
            cart = [item, *(i for i in cart if i != item)]
        elif event.name == CART_REMOVED:
            cart = [i for i in cart if i != item]
    return Session(viewed, [i for i in cart if i not in bought], frozenset(bought))


def rerank(models: ModelSet, trained: list[Scored], session: Session, k: int) -> list[Scored]:
    """The trained list re-ranked by the session (see the module docstring); the trained list as is
    when the session is empty."""
    if session.empty:
        return trained[:k]
    top = max((s.score for s in trained), default=0.0) or 1.0
    trained_scores = {s.item_id: s.score / top for s in trained}
    scores = dict(trained_scores)
    listed = {s.item_id: s for s in trained}
    reasons: dict[str, str] = {}  # the session's reason, where it did more than training
    strongest: dict[str, tuple[float, str]] = {}  # the largest single session boost an item got, and why
    sources = [(item, CART_WEIGHT, models.bought_with, "goes with {} in your cart") for item in session.cart]
    sources += [(item, 1.0, models.similar, "because you just viewed {}") for item in session.viewed]
    recency = {item: 0.5 ** i for i, item in enumerate(session.cart)}
    recency.update({item: 0.5 ** i for i, item in enumerate(session.viewed)})
    for item, weight, neighbours_of, reason in sources:
        try:
            neighbours = neighbours_of(item, NEIGHBOURS)
        except NotFound:
            continue  # an item the models have not seen yet
        best = max((n.score for n in neighbours), default=0.0) or 1.0
        for n in neighbours:
            boost = weight * recency[item] * n.score / best
            scores[n.item_id] = scores.get(n.item_id, 0.0) + boost
            if boost > strongest.get(n.item_id, (0.0, ""))[0]:
                strongest[n.item_id] = (boost, reason.format(models.items.label(models.items.position[item])))
    for item_id, (boost, why) in strongest.items():
        if boost >= trained_scores.get(item_id, 0.0) or item_id not in listed:
            reasons[item_id] = why
    gone = set(session.cart) | session.bought
    ranked = sorted((i for i in scores if i not in gone), key=lambda i: (-scores[i], i))
    return [Scored(i, scores[i], reasons[i]) if i in reasons else listed[i].rescored(scores[i]) for i in ranked[:k]]


def _item_id(product: object) -> str | None:
    if not isinstance(product, dict):
        return None
    item = product.get("product_id") or product.get("sku")
    return str(item) if isinstance(item, str | int) and not isinstance(item, bool) and item != "" else None
