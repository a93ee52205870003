"""Snowplow enriched events -> canonical events.

Two forms of the same event are read:

- the enriched TSV, one line per event, its 131 fields in the order of the Snowplow Python
  Analytics SDK (``snowplow_analytics_sdk.event_transformer.ENRICHED_EVENT_FIELD_TYPES``);
  ``contexts``, ``derived_contexts`` and ``unstruct_event`` are self-describing JSON;
- the JSON the SDK's ``transform`` makes of a line: flat keys named like the fields, empty
  fields left out, each entity under ``contexts_<vendor>_<name>_<model>`` (a list) and the
  self-describing event under ``unstruct_event_<vendor>_<name>_<model>`` (vendor dots and
  name capitals turned to underscores: ``fix_schema`` in its ``json_shredder``).

A payload is one TSV line or several (a string), one JSON event, or a JSON array of them.

- ids: ``id`` = ``event_id``; session = ``domain_sessionid`` (the tracker's session), else
  ``domain_userid`` (the first-party cookie, which spans visits: ``derived_session``);
  customer = ``user_id``. Time = ``derived_tstamp`` (the device time corrected for clock
  skew), else ``dvce_created_tstamp``, else ``collector_tstamp``. url = ``page_url``;
  device = ``dvce_type`` when the UA parser set it, else ``dvce_ismobile``.
- ``page_view`` -> PageView (``page_urlpath``, ``page_title``, ``page_referrer``).
- ``page_ping`` -> Presence "here": the tracker sends it only while the page is in use
  (activity tracking). Snowplow has no leave event: a session ends without a "left".
- ``link_click`` (``com.snowplowanalytics.snowplow/link_click``) and ``button_click`` ->
  Click without coordinates: the schemas carry the element, not the pointer, and a made-up
  position would make rage clicks out of any three clicks. The target is a selector,
  ``a#elementId`` / ``button#id``, else ``a.class.class`` / ``button.class``, else the
  link's ``targetUrl``; the rage-click detector treats positionless clicks on one target as
  one spot (``detectors.clicks``).
- ``submit_form`` -> FormSubmitted (``formId``). ``focus_form`` and ``change_form`` (form
  tracking) -> FormInteraction (``formId``, ``elementId``; the ``value`` they carry is
  dropped): the customer at work in a form, which no click tracking sees. No form schema
  carries validation errors, so FormFieldError has no Snowplow source.
- ``snowplow_ecommerce_action`` (``com.snowplowanalytics.snowplow.ecommerce``), by its
  ``type``: ``product_view`` -> PageView with the ``product`` entity's id and price;
  ``add_to_cart`` / ``remove_from_cart`` -> CartUpdated (first ``product`` entity, ``cart``
  entity's ``total_value``); ``checkout_step`` -> CheckoutStepViewed (``checkout_step``
  entity's ``step``); ``transaction`` -> OrderCompleted (``transaction`` entity's
  ``transaction_id``, ``revenue``, ``currency``). Steps are the tracker's own numbers.
  ``trns_error`` -> PaymentAttempted, failed (``transaction_error`` entity's
  ``error_shortcode`` or ``error_code`` as the reason; the ``transaction`` entity's method
  and amount). ``list_view``, ``list_click``, ``promo_view`` and ``promo_click`` are page
  views titled with the list's ``name`` (as Segment's browse events count as views).
  Snowplow has no checkout start (its first ``checkout_step`` is that), no step completion,
  no coupon result: those have no Snowplow source.
- ``web_vitals`` -> PagePerformance (``lcp``, ``inp``, ``cls``, ``ttfb``, in ms);
  ``application_error`` (the JavaScript tracker's error tracking) -> JsError (``message``,
  ``fileName``).

Anything else is ``unknown_event``; a field of the wrong kind is ``invalid_field``.

>>> from streams.adapters import snowplow
>>> out = snowplow.adapt({"event": "page_view", "event_id": "c6ef3124-b53a-4b13-a233",
...     "collector_tstamp": "2024-05-01T12:00:00.000Z", "domain_sessionid": "s1",
...     "domain_userid": "d1", "page_url": "https://shop.example/", "page_urlpath": "/"})
>>> page = out.events[0]
>>> page.id, page.time, page.session_id, page.path, page.derived_session
('c6ef3124-b53a-4b13-a233', 1714564800.0, 's1', '/', False)
>>> snowplow.adapt({"event": "struct", "event_id": "e2"}).rejected[0].reason
'unknown_event'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from detectors.events import (
    CartUpdated,
    CheckoutStepViewed,
    Click,
    FormInteraction,
    FormSubmitted,
    JsError,
    OrderCompleted,
    PagePerformance,
    PageView,
    PaymentAttempted,
    Presence,
)
from streams.adapters.base import Adapted, AdapterError, convert_each
from streams.adapters.segment import (
    as_float,
    as_id,
    as_int,
    as_str,
    as_time,
    element_text,
    first,
    invalid,
)

__all__ = ["FIELDS", "adapt", "convert", "from_tsv"]

#: The enriched event's fields in TSV order (Snowplow Python Analytics SDK,
#: ``ENRICHED_EVENT_FIELD_TYPES``; the same order as the Scala and other SDKs).
FIELDS: tuple[str, ...] = (
    "app_id", "platform", "etl_tstamp", "collector_tstamp", "dvce_created_tstamp", "event",
    "event_id", "txn_id", "name_tracker", "v_tracker", "v_collector", "v_etl", "user_id",
    "user_ipaddress", "user_fingerprint", "domain_userid", "domain_sessionidx", "network_userid",
    "geo_country", "geo_region", "geo_city", "geo_zipcode", "geo_latitude", "geo_longitude",
    "geo_region_name", "ip_isp", "ip_organization", "ip_domain", "ip_netspeed", "page_url",
    "page_title", "page_referrer", "page_urlscheme", "page_urlhost", "page_urlport",
    "page_urlpath", "page_urlquery", "page_urlfragment", "refr_urlscheme", "refr_urlhost",
    "refr_urlport", "refr_urlpath", "refr_urlquery", "refr_urlfragment", "refr_medium",
    "refr_source", "refr_term", "mkt_medium", "mkt_source", "mkt_term", "mkt_content",
    "mkt_campaign", "contexts", "se_category", "se_action", "se_label", "se_property",
    "se_value", "unstruct_event", "tr_orderid", "tr_affiliation", "tr_total", "tr_tax",
    "tr_shipping", "tr_city", "tr_state", "tr_country", "ti_orderid", "ti_sku", "ti_name",
    "ti_category", "ti_price", "ti_quantity", "pp_xoffset_min", "pp_xoffset_max",
    "pp_yoffset_min", "pp_yoffset_max", "useragent", "br_name", "br_family", "br_version",
    "br_type", "br_renderengine", "br_lang", "br_features_pdf", "br_features_flash",
    "br_features_java", "br_features_director", "br_features_quicktime",
    "br_features_realplayer", "br_features_windowsmedia", "br_features_gears",
    "br_features_silverlight", "br_cookies", "br_colordepth", "br_viewwidth", "br_viewheight",
    "os_name", "os_family", "os_manufacturer", "os_timezone", "dvce_type", "dvce_ismobile",
    "dvce_screenwidth", "dvce_screenheight", "doc_charset", "doc_width", "doc_height",
    "tr_currency", "tr_total_base", "tr_tax_base", "tr_shipping_base", "ti_currency",
    "ti_price_base", "base_currency", "geo_timezone", "mkt_clickid", "mkt_network", "etl_tags",
    "dvce_sent_tstamp", "refr_domain_userid", "refr_device_tstamp", "derived_contexts",
    "domain_sessionid", "derived_tstamp", "event_vendor", "event_name", "event_format",
    "event_version", "event_fingerprint", "true_tstamp",
)
_JSON_FIELDS = frozenset(("contexts", "derived_contexts", "unstruct_event"))

# iglu:vendor/name/format/model-revision-addition, as the SDK's SCHEMA_URI reads it.
_SCHEMA = re.compile(r"^iglu:([a-zA-Z0-9\-_.]+)/([a-zA-Z0-9\-_]+)/[a-zA-Z0-9\-_]+/([1-9][0-9]*)-")
_CAPITAL = re.compile(r"([^A-Z_])([A-Z])")

_EC = "com_snowplowanalytics_snowplow_ecommerce"
_SP = "com_snowplowanalytics_snowplow"


def _key(prefix: str, schema: Any) -> str:
    """The SDK's flat key for an entity or event of ``schema`` (its ``fix_schema``)."""
    m = _SCHEMA.match(schema) if type(schema) is str else None
    if m is None:
        raise invalid("schema", schema, "not an Iglu URI")
    vendor = m.group(1).replace(".", "_").lower()
    name = _CAPITAL.sub(r"\1_\2", m.group(2)).lower()
    return f"{prefix}_{vendor}_{name}_{m.group(3)}"


def _self_describing(name: str, text: str) -> Any:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        raise invalid(name, text, "not JSON, or nested too deep") from None
    data = doc.get("data") if type(doc) is dict else None
    if data is None:
        raise invalid(name, text, "no data")
    return data


def from_tsv(line: str) -> dict[str, Any]:
    """One enriched TSV line as the SDK's JSON form (empty fields left out).

    >>> fields = [""] * len(FIELDS)
    >>> fields[FIELDS.index("event")], fields[FIELDS.index("event_id")] = "page_ping", "e1"
    >>> from_tsv("\\t".join(fields))
    {'event': 'page_ping', 'event_id': 'e1'}
    """
    values = line.rstrip("\r\n").split("\t")
    if len(values) != len(FIELDS):
        raise AdapterError("invalid_field",
                           f"enriched TSV line of {len(values)} fields, not {len(FIELDS)}")
    out: dict[str, Any] = {}
    for name, value in zip(FIELDS, values, strict=True):
        if not value:
            continue
        if name not in _JSON_FIELDS:
            out[name] = value
        elif name == "unstruct_event":
            data = _self_describing(name, value)
            if type(data) is not dict or "data" not in data:
                raise invalid(name, value, "no event data")
            out[_key("unstruct_event", data.get("schema"))] = data["data"]
        else:
            data = _self_describing(name, value)
            if type(data) is not list:
                raise invalid(name, value, "not a list of entities")
            for entity in data:
                if type(entity) is not dict:
                    raise invalid(name, entity, "not an entity")
                out.setdefault(_key("contexts", entity.get("schema")), []).append(
                    entity.get("data"))
    return out


# --- builders ----------------------------------------------------------------------------------

_Builder = Callable[[dict[str, Any], dict[str, Any]], Any]


def _entity(ev: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    """The first entity ``contexts_<name>_1`` of the event (``{}`` if there is none)."""
    key = f"contexts_{name}_1"
    found = ev.get(key)
    if found is None:
        if required:
            raise invalid(key, None, "required")
        return {}
    if type(found) is not list or not found or type(found[0]) is not dict:
        raise invalid(key, found, "not a list of entities")
    return found[0]


def _unstruct(ev: dict[str, Any], name: str) -> dict[str, Any]:
    """The event's data under ``unstruct_event_<name>_<model>``, whatever the schema's model
    (button_click is at 2 now; its fields are the same)."""
    prefix = f"unstruct_event_{name}_"
    for key, data in ev.items():
        if key.startswith(prefix) and key[len(prefix):].isdigit():
            if type(data) is not dict:
                raise invalid(key, data, "not an object")
            return data
    raise invalid(prefix + "1", None, "required")


def _page_view(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    return PageView(
        **base,
        path=as_str(ev.get("page_urlpath"), "page_urlpath"),
        title=as_str(ev.get("page_title"), "page_title"),
        referrer=as_str(ev.get("page_referrer"), "page_referrer"),
    )


def _page_ping(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    return Presence(**base, state="here")


def _click(name: str, tag: str, id_key: str, classes_key: str, text_key: str) -> _Builder:
    def build(base: dict[str, Any], ev: dict[str, Any]) -> Any:
        d = _unstruct(ev, f"{_SP}_{name}")
        element = as_id(d.get(id_key), id_key)
        classes = d.get(classes_key)
        if classes is not None and (type(classes) is not list
                                    or any(type(c) is not str for c in classes)):
            raise invalid(classes_key, classes, "not a list of strings")
        if element:
            target = f"{tag}#{element}"
        elif classes:
            target = tag + "".join("." + c for c in classes)
        else:
            target = as_str(d.get("targetUrl"), "targetUrl") or tag
        # The element's text (a button's label, a link's content) tells a +/- stepper.
        return Click(**base, target=target, text=element_text(d.get(text_key), text_key))

    return build


def _submit_form(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    d = _unstruct(ev, f"{_SP}_submit_form")
    return FormSubmitted(**base, form=as_str(d.get("formId"), "formId"))


def _form_field(name: str, action: Literal["focus", "change"]) -> _Builder:
    def build(base: dict[str, Any], ev: dict[str, Any]) -> Any:
        d = _unstruct(ev, f"{_SP}_{name}")
        return FormInteraction(**base, form=as_str(d.get("formId"), "formId"),
                               field=as_str(d.get("elementId"), "elementId"), action=action)

    return build


def _web_vitals(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    d = _unstruct(ev, f"{_SP}_web_vitals")
    return PagePerformance(
        **base,
        lcp_ms=as_float(d.get("lcp"), "lcp", nonneg=True),
        inp_ms=as_float(d.get("inp"), "inp", nonneg=True),
        cls=as_float(d.get("cls"), "cls", nonneg=True),
        ttfb_ms=as_float(d.get("ttfb"), "ttfb", nonneg=True),
    )


def _product_view(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    product = _entity(ev, f"{_EC}_product", required=True)
    return PageView(
        **base,
        title=as_str(ev.get("page_title"), "page_title"),
        path=as_str(ev.get("page_urlpath"), "page_urlpath"),
        product_id=as_id(product.get("id"), "product.id"),
        price=as_float(product.get("price"), "product.price", nonneg=True),
    )


def _cart(action: str) -> _Builder:
    def build(base: dict[str, Any], ev: dict[str, Any]) -> Any:
        product = _entity(ev, f"{_EC}_product")
        cart = _entity(ev, f"{_EC}_cart")
        quantity = as_int(product.get("quantity"), "product.quantity", nonneg=True)
        return CartUpdated(
            **base,
            action=action,  # type: ignore[arg-type]
            product_id=as_id(product.get("id"), "product.id"),
            quantity=1 if quantity is None else quantity,
            price=as_float(product.get("price"), "product.price", nonneg=True),
            cart_value=as_float(cart.get("total_value"), "cart.total_value", nonneg=True),
            currency=as_str(first(cart, "currency") or product.get("currency"), "cart.currency"),
        )

    return build


def _checkout_step(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    step = _entity(ev, f"{_EC}_checkout_step", required=True)
    return CheckoutStepViewed(
        **base, step=as_int(step.get("step"), "checkout_step.step", required=True, nonneg=True))


def _list(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    # As the Segment adapter counts browse events ("Product List Viewed", ...) as page views.
    action = _unstruct(ev, f"{_EC}_snowplow_ecommerce_action")
    return PageView(**base, path=as_str(ev.get("page_urlpath"), "page_urlpath"),
                    title=as_str(first(action, "name", "type"), "name"))


def _transaction_error(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    error = _entity(ev, f"{_EC}_transaction_error")
    tr = _entity(ev, f"{_EC}_transaction")
    return PaymentAttempted(
        **base,
        success=False,
        decline_reason=as_str(first(error, "error_shortcode", "error_code"),
                              "transaction_error.error_shortcode"),
        method=as_str(tr.get("payment_method"), "transaction.payment_method"),
        amount=as_float(tr.get("revenue"), "transaction.revenue", nonneg=True),
        currency=as_str(tr.get("currency"), "transaction.currency"),
    )


def _application_error(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    d = _unstruct(ev, f"{_SP}_application_error")
    message = as_str(d.get("message"), "message")
    if not message:
        raise invalid("message", d.get("message"), "required")
    return JsError(**base, message=message, source=as_str(d.get("fileName"), "fileName"))


def _transaction(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    tr = _entity(ev, f"{_EC}_transaction", required=True)
    return OrderCompleted(
        **base,
        order_id=as_id(tr.get("transaction_id"), "transaction.transaction_id"),
        revenue=as_float(tr.get("revenue"), "transaction.revenue", required=True, nonneg=True),
        currency=as_str(tr.get("currency"), "transaction.currency"),
    )


#: ``snowplow_ecommerce_action`` type -> builder (refund is unknown_event: nothing the
#: detectors use).
ECOMMERCE_ACTIONS: dict[str, _Builder] = {
    "product_view": _product_view,
    "list_view": _list,
    "list_click": _list,
    "promo_view": _list,
    "promo_click": _list,
    "trns_error": _transaction_error,
    "add_to_cart": _cart("add"),
    "remove_from_cart": _cart("remove"),
    "checkout_step": _checkout_step,
    "transaction": _transaction,
}


def _ecommerce(base: dict[str, Any], ev: dict[str, Any]) -> Any:
    kind = _unstruct(ev, f"{_EC}_snowplow_ecommerce_action").get("type")
    build = ECOMMERCE_ACTIONS.get(kind) if type(kind) is str else None
    if build is None:
        raise AdapterError("unknown_event", f"snowplow ecommerce action {str(kind)[:40]!r}")
    return build(base, ev)


#: Self-describing events by their flat key's name part -> builder.
UNSTRUCT_EVENTS: dict[str, _Builder] = {
    f"{_SP}_link_click": _click("link_click", "a", "elementId", "elementClasses",
                                "elementContent"),
    f"{_SP}_button_click": _click("button_click", "button", "id", "classes", "label"),
    f"{_SP}_submit_form": _submit_form,
    f"{_SP}_focus_form": _form_field("focus_form", "focus"),
    f"{_SP}_change_form": _form_field("change_form", "change"),
    f"{_SP}_web_vitals": _web_vitals,
    f"{_SP}_application_error": _application_error,
    f"{_EC}_snowplow_ecommerce_action": _ecommerce,
}

_PREFIX = "unstruct_event_"


def _builder(ev: dict[str, Any]) -> _Builder:
    kind = ev.get("event")
    if kind == "page_view":
        return _page_view
    if kind == "page_ping":
        return _page_ping
    if kind == "unstruct":
        for key in ev:
            if key.startswith(_PREFIX):
                build = UNSTRUCT_EVENTS.get(key[len(_PREFIX):].rsplit("_", 1)[0])
                if build is not None:
                    return build
        name = as_str(ev.get("event_name"), "event_name")
        raise AdapterError("unknown_event", f"snowplow event {str(name)[:80]!r} is not mapped")
    raise AdapterError("unknown_event", f"snowplow event {str(kind)[:40]!r} is not mapped")


_DEVICES = {"Computer": "desktop", "Mobile": "mobile", "Tablet": "tablet"}


def convert(item: Any) -> Any:
    """One enriched event (a TSV line or its JSON form) as a canonical event."""
    ev = from_tsv(item) if type(item) is str else item
    if type(ev) is not dict:
        raise invalid("event", ev, "not an object")
    build = _builder(ev)
    event_id = as_id(ev.get("event_id"), "event_id")
    if event_id is None:
        raise AdapterError("missing_id", "snowplow event without event_id")
    named = as_id(ev.get("domain_sessionid"), "domain_sessionid")
    session = named or as_id(ev.get("domain_userid"), "domain_userid")
    if session is None:
        raise AdapterError("missing_id", "snowplow event without domain_sessionid or domain_userid")
    stamp = first(ev, "derived_tstamp", "dvce_created_tstamp", "collector_tstamp")
    if stamp is None:
        raise invalid("collector_tstamp", None, "no derived, device or collector timestamp")
    kind, mobile = ev.get("dvce_type"), ev.get("dvce_ismobile")
    if type(kind) is str and kind in _DEVICES:  # the UA parser's; else the tracker's flag
        device: str | None = _DEVICES[kind]
    else:
        device = None if mobile is None else ("mobile" if mobile in (True, "1") else "desktop")
    base: dict[str, Any] = {
        "id": event_id,
        "time": as_time(stamp, "derived_tstamp"),
        "session_id": session,
        "customer_id": as_id(ev.get("user_id"), "user_id"),
        "url": as_str(ev.get("page_url"), "page_url"),
        "device": device,
    }
    if not named:
        base["derived_session"] = True
    return build(base, ev)


def _items(payload: Any) -> list[Any]:
    if type(payload) is str:
        return [line for line in payload.splitlines() if line.strip()]
    if type(payload) is list:
        return payload
    if type(payload) is dict:
        return [payload] if payload else []
    raise AdapterError("unknown_format", "Snowplow events are TSV lines or JSON objects")


def adapt(payload: Any) -> Adapted:
    """Enriched TSV lines (a string), one JSON event or a JSON array of events."""
    items = _items(payload)
    if not items:
        raise AdapterError("empty", "no Snowplow events")
    return convert_each(items, convert)
