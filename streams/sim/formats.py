"""Payloads in the formats users emit, per source: Segment calls (``segment_payload``), GA4
Measurement Protocol payloads (``ga4_payload``), and the times and wording of help-desk tickets
(``iso_seconds``, ``ticket_text``)."""

from __future__ import annotations

import random
import time as _time
from typing import Any

from streams.sim.session import Session

__all__ = ["Iso", "ga4_payload", "iso_seconds", "segment_payload", "ticket_text"]

# --- web: Segment and GA4 --------------------------------------------------------------------


class Iso:
    """ISO 8601 UTC with milliseconds, caching the formatted second (times mostly ascend)."""

    __slots__ = ("sec", "prefix")

    def __init__(self) -> None:
        self.sec = -1
        self.prefix = ""

    def __call__(self, ms: int) -> str:
        sec, rem = divmod(ms, 1000)
        if sec != self.sec:
            self.sec = sec
            self.prefix = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(sec))
        return f"{self.prefix}.{rem:03d}Z"


def _items(products: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"item_id": p["product_id"], "item_name": p["name"], "item_category": p["category"],
             "price": p["price"], "quantity": p.get("quantity", 1)} for p in products]


def _ga4_event(kind: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Segment-shaped action as a GA4 event name and params."""
    if kind == "page":
        params = {"page_title": p["title"]}
        if "referrer" in p:
            params["page_referrer"] = p["referrer"]
        if "status_code" in p:
            params["status_code"] = p["status_code"]
        return "page_view", params
    if kind == "Product Viewed":
        return "view_item", {"currency": p["currency"], "value": p["price"],
                             "items": _items([p])}
    if kind == "Product List Viewed":
        return "view_item_list", {"item_list_id": p["list_id"], "item_list_name": p["category"]}
    if kind == "Products Searched":
        return "search", {"search_term": p["query"]}
    if kind == "Product Added":
        return "add_to_cart", {"currency": p["currency"],
                               "value": round(p["price"] * p["quantity"], 2),
                               "cart_value": p["cart_value"], "items": _items([p])}
    if kind == "Cart Viewed":
        return "view_cart", {"currency": p["currency"], "value": p["cart_value"],
                             "items": _items(p["products"])}
    if kind == "Checkout Started":
        return "begin_checkout", {"currency": p["currency"], "value": p["value"],
                                  "items": _items(p["products"])}
    if kind == "Checkout Step Viewed":
        return "checkout_step_viewed", {"step": p["step"], "step_name": p["step_name"]}
    if kind == "Checkout Step Completed":
        if p["step"] == 2:
            return "add_shipping_info", {"shipping_tier": p["shipping_method"]}
        return "checkout_step_completed", {"step": p["step"], "step_name": p["step_name"]}
    if kind == "Payment Info Entered":
        return "add_payment_info", {"payment_type": p["payment_method"]}
    if kind in ("Payment Attempted", "Payment Succeeded", "Payment Declined"):
        return "payment_attempted", {
            "success": p.get("success", kind == "Payment Succeeded"),
            "decline_reason": p.get("decline_reason") or p.get("reason"),
            "payment_type": p["payment_method"], "provider": p["provider"],
            "value": p["amount"], "currency": p["currency"]}
    if kind == "Order Completed":
        return "purchase", {"transaction_id": p["order_id"], "value": p["revenue"],
                            "tax": p["tax"], "shipping": p["shipping"],
                            "currency": p["currency"], "items": _items(p["products"])}
    if kind == "Coupon Applied":
        return "coupon_applied", {"coupon": p["coupon_id"]}
    if kind == "Coupon Denied":
        return "coupon_denied", {"coupon": p["coupon_id"], "reason": p["reason"]}
    if kind == "Element Clicked":
        return "click", p
    if kind == "Dead Click":
        return "dead_click", p
    if kind == "JS Error":
        return "exception", {"description": p["message"], "source": p["source"],
                             "fatal": False}
    if kind == "API Error":
        return "api_error", {"endpoint": p["endpoint"], "status_code": p["status_code"]}
    if kind == "Web Vitals":
        return "web_vitals", p
    if kind == "Form Field Error":
        return "form_field_error", p
    if kind == "Form Submitted":
        return "form_submit", {"form_id": p["form"]}
    if kind == "Page Left":  # gtag sends it as the page is hidden or left
        return "user_engagement", p
    raise AssertionError(f"no GA4 rendering for {kind!r}")  # pragma: no cover


def segment_payload(s: Session, t: int, kind: str, props: dict[str, Any], iso: Iso
                    ) -> dict[str, Any]:
    """A Segment call for an action of ``s`` at ``t`` (ms)."""
    ctx = s.ctx
    if ctx is None:
        ctx = s.ctx = {"sessionId": s.sid, "device": {"type": s.device},
                       "page": {"path": s.path, "url": s.url}}
    if kind == "page":
        msg: dict[str, Any] = {"type": "page", "name": props["title"]}
    elif kind == "identify":
        msg = {"type": "identify"}
    else:
        msg = {"type": "track", "event": kind}
    msg["messageId"] = f"{s.sid}.{s.n}"
    msg["anonymousId"] = s.anon
    if s.customer_id:
        msg["userId"] = s.customer_id
    msg["timestamp"] = iso(t)
    msg["context"] = ctx
    msg["traits" if kind == "identify" else "properties"] = props
    return msg


def ga4_payload(s: Session, t: int, kind: str, props: dict[str, Any]) -> dict[str, Any]:
    """A GA4 Measurement Protocol payload for an action of ``s`` at ``t`` (ms)."""
    name, params = _ga4_event(kind, props)
    params = {**params, "session_id": s.sid, "page_location": s.url}
    msg: dict[str, Any] = {"client_id": s.client_id, "timestamp_micros": t * 1000,
                           "device": s.ga4_device, "events": [{"name": name,
                                                               "params": params}]}
    if s.customer_id:
        msg["user_id"] = s.customer_id
    return msg


# --- support: help-desk tickets --------------------------------------------------------------


def iso_seconds(ms: int) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(ms // 1000))


def ticket_text(about: str, s: Session, rng: random.Random) -> tuple[str, str, str]:
    value = f"${s.cart_value:.2f}"
    texts = {
        "payment_declined": ("Card declined at checkout",
                             f"My card was declined several times when paying {value}, but my "
                             "bank says nothing is wrong. Please help.", "high"),
        "form_error_loop": ("Can't get past the checkout form",
                            "The checkout keeps saying my address/postal code is invalid. It "
                            "is correct!", "high"),
        "coupon_failure": ("Promo code not working",
                           "Your discount code is rejected every time I try it.", "normal"),
        "api_error": ("Checkout error", "I get an error loading shipping options at checkout.",
                      "high"),
        "error_page": ("Page not working", "Your site shows an error page when I try to buy.",
                       "normal"),
        "step_stall": ("Question before ordering",
                       "I was in the middle of ordering and wasn't sure about delivery times.",
                       "low"),
        "order": ("Where is my order?", "When will my order arrive? I haven't had an email.",
                  "normal"),
        "product": ("Product question", "Does this come in other sizes?", "low"),
    }
    default = ("Problem with the website",
               f"The website was slow and buttons didn't respond while I shopped ({about}).",
               "normal")
    subject, text, priority = texts.get(about, default)
    if rng.random() < 0.2:
        priority = "urgent" if priority == "high" else priority
    return subject, text, priority
