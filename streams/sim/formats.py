"""Payloads in the formats users emit, per source: Segment calls (``segment_payload``), GA4
Measurement Protocol payloads (``ga4_payload``), Snowplow enriched events in the analytics
SDK's JSON form (``snowplow_payload``), PostHog events as posthog-js captures them
(``posthog_payload``), and the times and wording of help-desk tickets (``iso_seconds``,
``ticket_text``).

The same actions in each: where a format has no way to say something, that action sends
nothing (None) rather than something the tool would never send. Snowplow: no leave beacon
(its ``page_ping`` heartbeats are sent instead), no identify call (``user_id`` rides on every
event), no checkout start (its first ``checkout_step`` is that), no step completion, coupon
result, payment details, API error or dead click; a field error shows only as the field's
``change_form``, clicks only on links and buttons (what its link and button click tracking
sees) and focus on form fields (its form tracking). PostHog: the e-commerce and
form-result events go as custom events named as in Segment's spec, as PostHog's guides do."""

from __future__ import annotations

import random
import re
import time as _time
from typing import Any

from streams.sim.session import Session

__all__ = ["BLIND", "Iso", "ga4_payload", "iso_seconds", "posthog_payload", "segment_payload",
           "snowplow_payload", "ticket_text"]

#: Frictions a format has no event for, so that no detector can see them in its sessions
#: (see above): Snowplow sends no dead-click report, page status, field error, coupon result
#: or failed API call. Scoring leaves them out where the format cannot say them.
BLIND: dict[str, frozenset[str]] = {
    "snowplow": frozenset({"dead_click", "error_page", "form_error_loop", "coupon_failure",
                           "api_error"}),
}

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


# --- web: Snowplow ---------------------------------------------------------------------------

_SP = "com_snowplowanalytics_snowplow"
_EC = "com_snowplowanalytics_snowplow_ecommerce"
#: The UA parser's device classes (``dvce_type``).
_SP_DEVICES = {"desktop": "Computer", "mobile": "Mobile", "tablet": "Tablet"}


def _sp_product(p: dict[str, Any], quantity: int | None = None) -> dict[str, Any]:
    out = {"id": p["product_id"], "name": p["name"], "category": p["category"],
           "price": p["price"], "currency": p.get("currency", "USD")}
    if quantity is not None:
        out["quantity"] = quantity
    return out


def _sp_ecommerce(kind: str, **entities: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {f"unstruct_event_{_EC}_snowplow_ecommerce_action_1": {"type": kind}}
    for name, items in entities.items():
        out[f"contexts_{_EC}_{name}_1"] = items
    return out


def _aria(target: str) -> tuple[str, str | None]:
    """A selector and the aria-label it names, if any: ``button[aria-label="Increase"]``."""
    m = _ARIA.fullmatch(target)
    return (m.group(1), m.group(2)) if m else (target, None)


_ARIA = re.compile(r'([^\[]*)\[aria-label="([^"]*)"\]')


def _sp_click(target: str, url: str, text: str | None = None) -> dict[str, Any] | None:
    """A ``button_click`` or ``link_click`` for a selector like ``button#pay`` or ``a.card``;
    a button's label is its text, else its aria-label (a tracking plan that sets
    ``data-sp-button-label`` to the accessible name of an icon button)."""
    target, aria = _aria(target)
    tag, _, rest = target.partition("#")
    ident = rest or None
    if ident is None:
        tag, *classes = target.split(".")
    else:
        classes = []
    if tag == "button":
        data: dict[str, Any] = {"label": text or aria or "Button"}
        if ident:
            data["id"] = ident
        if classes:
            data["classes"] = classes
        return {f"unstruct_event_{_SP}_button_click_1": data}
    if tag == "a":
        data = {"targetUrl": url}
        if ident:
            data["elementId"] = ident
        if classes:
            data["elementClasses"] = classes
        return {f"unstruct_event_{_SP}_link_click_1": data}
    return None


def _snowplow_event(kind: str, p: dict[str, Any], url: str) -> dict[str, Any] | None:
    """A Segment-shaped action as Snowplow's ``event`` and its flat fields; None: no such event."""
    if kind == "Page Heartbeat":
        return {"event": "page_ping"}
    if kind == "page":
        out = {"event": "page_view", "page_title": p["title"]}
        if "referrer" in p:
            out["page_referrer"] = p["referrer"]
        return out
    if kind == "Product Viewed":
        return {"event": "unstruct", **_sp_ecommerce("product_view", product=[_sp_product(p)])}
    if kind in ("Product List Viewed", "Products Searched"):
        name = p["category"] if kind == "Product List Viewed" else "search results"
        return {"event": "unstruct", f"unstruct_event_{_EC}_snowplow_ecommerce_action_1":
                {"type": "list_view", "name": name}}
    if kind == "Product Added":
        return {"event": "unstruct", **_sp_ecommerce(
            "add_to_cart", product=[_sp_product(p, p["quantity"])],
            cart=[{"total_value": p["cart_value"], "currency": p["currency"]}])}
    if kind == "Checkout Step Viewed":
        return {"event": "unstruct", **_sp_ecommerce("checkout_step",
                                                       checkout_step=[{"step": p["step"]}])}
    if kind == "Order Completed":
        return {"event": "unstruct", **_sp_ecommerce("transaction", transaction=[{
            "transaction_id": p["order_id"], "revenue": p["revenue"], "currency": p["currency"],
            "payment_method": "card", "total_quantity": sum(i.get("quantity", 1)
                                                            for i in p["products"]),
            "tax": p["tax"], "shipping": p["shipping"]}])}
    if kind in ("Payment Attempted", "Payment Declined"):
        if p.get("success", kind != "Payment Declined"):
            return None  # a payment that went through shows as the transaction
        return {"event": "unstruct", **_sp_ecommerce(
            "trns_error", transaction_error=[{"error_shortcode": p.get("decline_reason")
                                              or p.get("reason"), "error_type": "soft"}],
            transaction=[{"transaction_id": p.get("order_id", "pending"), "revenue": p["amount"],
                          "currency": p["currency"], "payment_method": p["payment_method"],
                          "total_quantity": 1}])}
    if kind == "Element Clicked":
        click = _sp_click(p["target"], url, p.get("text"))
        if click is None and p["target"].startswith(("input", "select", "textarea")):
            # Form tracking sees a field taking focus, where click tracking sees nothing.
            field = re.split(r"[#.:\[]", p["target"])[0] if "#" not in p["target"] else \
                p["target"].split("#", 1)[1]
            return {"event": "unstruct", f"unstruct_event_{_SP}_focus_form_1": {
                "formId": "checkout", "elementId": field, "nodeName": "INPUT",
                "elementType": "text", "value": None}}
        return None if click is None else {"event": "unstruct", **click}
    if kind == "Form Field Error":  # what Snowplow sees of it: the field was changed
        return {"event": "unstruct", f"unstruct_event_{_SP}_change_form_1": {
            "formId": p["form"], "elementId": p["field"], "nodeName": "INPUT", "type": "text",
            "value": None}}
    if kind == "JS Error":
        return {"event": "unstruct", f"unstruct_event_{_SP}_application_error_1": {
            "programmingLanguage": "JAVASCRIPT", "message": p["message"],
            "fileName": p["source"]}}
    if kind == "Web Vitals":
        return {"event": "unstruct", f"unstruct_event_{_SP}_web_vitals_1": {
            "lcp": p["lcp"], "inp": p["inp"], "cls": p["cls"], "ttfb": p["ttfb"]}}
    if kind == "Form Submitted":
        if p.get("success") is False:
            return None  # submit_form carries no result: a rejected form would pass as sent
        return {"event": "unstruct", f"unstruct_event_{_SP}_submit_form_1": {"formId": p["form"]}}
    return None  # see the module docstring for what Snowplow cannot say


def snowplow_payload(s: Session, t: int, kind: str, props: dict[str, Any], iso: Iso
                     ) -> dict[str, Any] | None:
    """A Snowplow enriched event (the analytics SDK's JSON form) for an action of ``s`` at
    ``t`` (ms); None for an action Snowplow has no event for."""
    fields = _snowplow_event(kind, props, s.url)
    if fields is None:
        return None
    stamp = iso(t)
    msg: dict[str, Any] = {
        "app_id": "shop", "platform": "web", "collector_tstamp": stamp,
        "dvce_created_tstamp": stamp, "event_id": f"{s.sid}.{s.n}", "name_tracker": "sp",
        "v_tracker": "js-3.23.0", "domain_userid": s.anon, "page_url": s.url,
        "page_urlpath": s.path, "dvce_type": _SP_DEVICES[s.device],
        "dvce_ismobile": s.device == "mobile", "domain_sessionid": s.sid,
        "derived_tstamp": stamp, **fields,
    }
    if s.customer_id:
        msg["user_id"] = s.customer_id
    return msg


# --- web: PostHog ----------------------------------------------------------------------------

_PH_DEVICES = {"desktop": "Desktop", "mobile": "Mobile", "tablet": "Tablet"}


def _ph_chain(target: str, text: str | None = None) -> str:
    """A selector like ``button#pay``, ``a.card`` or ``button[aria-label="..."]`` as
    posthog-js's ``$elements_chain``, with the element's text if it has one."""
    target, aria = _aria(target)
    tail = 'nth-child="1"nth-of-type="1"' + (f'text="{text}"' if text else "")
    if aria:
        tail = f'attr__aria-label="{aria}"' + tail
    tag, _, ident = target.partition("#")
    if ident:
        return f'{tag}:attr__id="{ident}"attr_id="{ident}"{tail}'
    tag, *classes = tag.split(":")[0].split(".")
    cls = "".join("." + c for c in sorted(classes))
    attr = f'attr__class="{" ".join(classes)}"' if classes else ""
    return f"{tag}{cls}:{attr}{tail}"


def _posthog_event(kind: str, p: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """A Segment-shaped action as a PostHog event name and properties."""
    if kind == "page":
        props = {"title": p["title"]}
        if "referrer" in p:
            props["$referrer"] = p["referrer"]
        if "status_code" in p:
            props["status_code"] = p["status_code"]
        return "$pageview", props
    if kind == "Page Left":
        return "$pageleave", {}
    if kind == "Element Clicked":  # autocapture sends the element, not the pointer
        props = {"$event_type": "click", "$ce_version": 1,
                 "$elements_chain": _ph_chain(p["target"], p.get("text"))}
        if p.get("text"):
            props["$el_text"] = p["text"]
        return "$autocapture", props
    if kind == "Dead Click":
        return "$dead_click", {"$event_type": "click", "$ce_version": 1,
                               "$elements_chain": _ph_chain(p["target"])}
    if kind == "JS Error":
        return "$exception", {"$exception_list": [{
            "type": "Error", "value": p["message"], "mechanism": {"handled": False,
                                                                  "type": "onerror"},
            "stacktrace": {"type": "raw", "frames": [{"filename": p["source"],
                                                      "in_app": True}]}}]}
    if kind == "Web Vitals":
        return "$web_vitals", {"$web_vitals_LCP_value": p["lcp"],
                               "$web_vitals_INP_value": p["inp"],
                               "$web_vitals_CLS_value": p["cls"],
                               "$web_vitals_TTFB_value": p["ttfb"]}
    return kind, p  # a custom event named as in Segment's spec


def posthog_payload(s: Session, t: int, kind: str, props: dict[str, Any], iso: Iso
                    ) -> dict[str, Any]:
    """A PostHog event as posthog-js captures it, for an action of ``s`` at ``t`` (ms)."""
    distinct = s.customer_id or s.anon
    base = {"distinct_id": distinct, "$session_id": s.sid, "$device_id": s.anon,
            "$device_type": _PH_DEVICES[s.device], "$current_url": s.url,
            "$pathname": s.path, "$lib": "web", "$is_identified": bool(s.customer_id)}
    if s.customer_id:
        base["$user_id"] = s.customer_id
    msg: dict[str, Any] = {"uuid": f"{s.sid}.{s.n}", "timestamp": iso(t)}
    if kind == "identify":
        msg["event"] = "$identify"
        msg["properties"] = {**base, "$anon_distinct_id": s.anon}
        msg["$set"] = props
        return msg
    name, extra = _posthog_event(kind, props)
    msg["event"] = name
    msg["properties"] = {**base, **extra}
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
