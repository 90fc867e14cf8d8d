"""The end of a shopping session: cart review, checkout, order, and the odd refund.

Split from `session` to keep modules small; these functions drive a `Shopper` through its
public emission helpers. Abandonment happens at two points, as in real funnels: at the
cart (the cart stays open and may be resumed in a later session) and at payment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from persona.synth.ids import MS_PER_DAY, short_hex, uuid4_from
from persona.synth.messages import CURRENCY, Cart, line_item

if TYPE_CHECKING:
    from persona.synth.session import Shopper

CHECKOUT_DROP = 0.22  # share of started checkouts never completed (payment step abandonment)
_PROMO_COUPONS = ("FALL15", "FALL15", "VIP20", "FREESHIP")


def cart_and_checkout(shopper: Shopper, cart: Cart, resumed: bool) -> None:
    """Review the cart, then maybe check out and order; `resumed` carts convert more often."""
    rng, plan, customer = shopper.rng, shopper.plan, shopper.customer
    web = shopper.ctx.is_web
    if web:
        shopper.page_view("Cart", "/cart", "Your cart")
    shopper.track("Cart Viewed", {"cart_id": cart.id, "products": cart.lines()})
    shopper.think()
    if len(cart.items) > 1 and rng.random() < 0.15:  # second thoughts
        product, quantity = cart.items.pop(rng.choice(list(cart.items)))
        shopper.track("Product Removed", {"cart_id": cart.id, **line_item(product, quantity)})
        shopper.think()
    chance = 0.42 * plan.buy_propensity * (1.0 - 0.35 * customer.price_sensitivity)
    if rng.random() >= min(max(chance, 0.65 if resumed else 0.0), 0.92):
        return  # abandoned at the cart
    if shopper.signed_up and not plan.devices[shopper.dev].logged_in:
        shopper.log_in()  # an account holder logs in to check out
    coupon = _choose_coupon(shopper)
    amounts = cart.amounts(coupon)
    order_id = f"ord-{short_hex(rng, 16)}"
    if web:
        shopper.page_view("Checkout", "/checkout", "Checkout")
    shopper.track("Checkout Started", {"order_id": order_id, "cart_id": cart.id, "value": amounts["revenue"],
                                       "revenue": amounts["revenue"], "currency": CURRENCY,
                                       "products": cart.lines()})
    shopper.t += 20_000 + int(rng.expovariate(1 / 60_000))  # typing card details
    if rng.random() < CHECKOUT_DROP:
        return  # abandoned at payment; the cart stays open
    props: dict[str, Any] = {"order_id": order_id, "cart_id": cart.id, "total": amounts["total"],
                             "revenue": amounts["revenue"], "shipping": amounts["shipping"],
                             "tax": amounts["tax"], "discount": amounts["discount"]}
    if coupon is not None:
        props["coupon"] = coupon
    props["currency"] = CURRENCY
    props["products"] = cart.lines()
    shopper.track("Order Completed", props)
    if web:
        shopper.t += 300 + rng.randrange(1500)
        shopper.page_view("Order Confirmation", "/checkout/confirmation", "Thank you for your order")
    shopper.carts[shopper.dev] = None
    shopper.orders += 1
    _maybe_refund(shopper, order_id, cart, amounts["total"])
    shopper.think()


def _choose_coupon(shopper: Shopper) -> str | None:
    """New accounts often use the welcome code; price hunters look for promo codes."""
    rng = shopper.rng
    if shopper.signed_up and shopper.orders == 0 and rng.random() < 0.5:
        return "WELCOME10"
    if rng.random() < 0.06 + 0.3 * shopper.customer.price_sensitivity:
        return _PROMO_COUPONS[rng.randrange(len(_PROMO_COUPONS))]
    return None


def _maybe_refund(shopper: Shopper, order_id: str, cart: Cart, order_total: float) -> None:
    """Some orders come back days later; the refund is sent by the shop's back office."""
    rng = shopper.rng
    lines = list(cart.items.values())
    if rng.random() >= 0.06 + 0.03 * min(len(lines), 3):  # bigger baskets see more returns
        return
    when = shopper.t + int((2 + 19 * rng.random()) * MS_PER_DAY)
    if when >= shopper.end_ms:
        return
    if len(lines) > 1 and rng.random() < 0.5:  # partial return of some items
        lines = rng.sample(lines, rng.randrange(1, len(lines)))
        total = round(sum(p.price * q for p, q in lines), 2)
    else:
        total = order_total
    msg: dict[str, Any] = {"type": "track", "event": "Order Refunded", "messageId": uuid4_from(rng),
                           "timestamp": ""}
    # The back office knows the order's identity: the account, or the guest's anonymousId.
    if shopper.user_id is not None:
        msg["userId"] = shopper.user_id
    else:
        msg["anonymousId"] = shopper.plan.devices[shopper.dev].anonymous_id
    msg["properties"] = {"order_id": order_id, "total": total, "currency": CURRENCY,
                         "products": [line_item(p, q) for p, q in lines]}
    shopper.out.append((when, msg, None, "", None, None, None))
