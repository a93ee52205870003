"""PostHog events -> canonical events.

Accepted payloads: the capture API's bodies (``/capture`` or ``/e``: one event; ``/batch``:
``{"api_key", "batch": [...]}``), a JSON array of events, and events as PostHog exports them
(the same objects). An event is ``{"event", "properties", "timestamp", "distinct_id"?,
"uuid"?}``; posthog-js puts ``distinct_id`` in ``properties``, server libraries at the top.
Property names are those posthog-js sends (``packages/browser/src``).

- ids: ``id`` = ``uuid``, else a hash of the event's content (``segment.content_id``: a
  re-send gets the same id); session = ``properties.$session_id``, else the distinct id
  (``derived_session``: it spans visits); customer = ``properties.$user_id`` (registered by
  ``identify``), else the distinct id when ``properties.$is_identified`` is true, else none:
  an anonymous distinct id names a browser, not a customer. time = ``timestamp`` (ISO 8601 or
  epoch); url = ``$current_url``; device = ``$device_type`` (Desktop/Mobile/Tablet).
- ``$pageview`` -> PageView (``$pathname``, ``title``, ``$referrer``, and a custom
  ``status_code`` property, as the GA4 adapter reads a custom param: PostHog has no name for
  error pages).
- ``$pageleave`` -> Presence "left".
- ``$autocapture`` by ``$event_type``: ``click`` -> Click, ``submit`` -> FormSubmitted (the
  form's ``id``); ``change`` carries no result and is ``unknown_event``. posthog-js sends no
  pointer position with autocapture, only the element: the Click has no coordinates and its
  target is the clicked element (first of ``$elements_chain``, or of the older ``$elements``)
  as a selector, ``tag#id`` or else ``tag.class.class``; the rage-click detector treats
  positionless clicks on one target as one spot.
- ``$rageclick`` is not mapped (``unknown_event``, as every unmapped event, so nothing is
  dropped in silence): posthog-js sends it beside the ``$autocapture`` of the click that
  completes a burst, so the clicks are all here already and the rage-click detector finds
  the burst in them; mapping it as well would count the burst twice.
- ``$dead_click`` -> DeadClick (target as above); ``$exception`` -> JsError (the first of
  ``$exception_list``: its ``value``, and the file of its last stack frame; else
  ``$exception_message``); ``$web_vitals`` -> PagePerformance (``$web_vitals_LCP_value``,
  ``_INP_``, ``_CLS_``, ``_TTFB_``; posthog-js sends LCP, CLS, FCP and INP by default).
- ``$identify`` -> Identify (traits = ``$set``; customer = the distinct id it identifies).
- custom events named as in Segment's spec ("Product Added", "Order Completed", ...: PostHog's
  e-commerce guide uses those names) go through the Segment adapter's track builders, with
  the event's properties.

Any other name is ``unknown_event``; a field of the wrong kind is ``invalid_field``.

>>> from streams.adapters import posthog
>>> out = posthog.adapt({"api_key": "phc_x", "batch": [{"event": "$pageview",
...     "uuid": "0190b4f5-ab34-7a4a", "timestamp": "2024-05-01T12:00:00.000Z",
...     "properties": {"distinct_id": "d1", "$session_id": "s1",
...                    "$current_url": "https://shop.example/cart", "$pathname": "/cart"}}]})
>>> page = out.events[0]
>>> page.id, page.time, page.session_id, page.path, page.customer_id
('0190b4f5-ab34-7a4a', 1714564800.0, 's1', '/cart', None)
>>> posthog.adapt({"event": "$feature_flag_called", "distinct_id": "d1",
...     "timestamp": 1.0}).rejected[0].reason
'unknown_event'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detectors.bounds import trait_number_problem
from detectors.events import (
    Click,
    DeadClick,
    FormSubmitted,
    Identify,
    JsError,
    PagePerformance,
    PageView,
    Presence,
)
from streams.adapters import segment
from streams.adapters.base import Adapted, AdapterError, calls_of, convert_each
from streams.adapters.segment import (
    as_bool,
    as_float,
    as_id,
    as_int,
    as_str,
    as_time,
    content_id,
    element_text,
    first,
    invalid,
)

__all__ = ["adapt", "convert", "element_target"]

_Builder = Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], Any]

# One element of an elements chain: the selector (tag and classes; classes may hold a ":"),
# then its attributes as key="value" (quotes inside values escaped with a backslash).
_SELECTOR = re.compile(r'^(.*?):(?=[\w\-]+="|$)')
_ATTR = re.compile(r'([\w\-]+)="((?:[^"\\]|\\.)*)"')


def _first_element(chain: str) -> str:
    """The chain up to its first ``;`` outside quotes: the element the event happened on."""
    quoted = escaped = False
    for i, c in enumerate(chain):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ";" and not quoted:
            return chain[:i]
    return chain


def element_target(props: dict[str, Any]) -> str | None:
    """The clicked element as a selector, from ``$elements_chain`` or ``$elements``.

    >>> element_target({"$elements_chain": 'button.btn.pay:attr__id="pay"attr_id="pay"'
    ...                 'nth-child="2"nth-of-type="1"text="Pay";form:nth-child="1"'})
    'button#pay'
    >>> element_target({"$elements": [{"tag_name": "a", "classes": ["nav", "cart"]}]})
    'a.nav.cart'
    """
    chain = props.get("$elements_chain")
    if type(chain) is str and chain:
        element = _first_element(chain)
        m = _SELECTOR.match(element)
        selector = m.group(1) if m else element
        attrs = dict(_ATTR.findall(element[len(selector):]))
        tag = selector.split(".", 1)[0]
        ident = attrs.get("attr_id") or attrs.get("attr__id")
        if ident:
            return f"{tag}#{ident}"
        label = attrs.get("attr__aria-label")  # an icon button's only name (a +/- stepper)
        if label and selector:
            return f'{selector}[aria-label="{label}"]'
        return selector or None
    elements = props.get("$elements")
    if elements is None:
        return None
    if type(elements) is not list or not elements or type(elements[0]) is not dict:
        raise invalid("$elements", elements, "not a list of elements")
    el = elements[0]
    tag = as_str(el.get("tag_name"), "$elements[0].tag_name") or ""
    ident = as_id(el.get("attr__id"), "$elements[0].attr__id")
    if ident:
        return f"{tag}#{ident}"
    classes = el.get("classes")
    if classes is not None and (type(classes) is not list
                                or any(type(c) is not str for c in classes)):
        raise invalid("$elements[0].classes", classes, "not a list of strings")
    return tag + "".join("." + c for c in classes or ()) or None


# --- builders ----------------------------------------------------------------------------------


def _pageview(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return PageView(
        **base,
        path=as_str(p.get("$pathname"), "properties.$pathname"),
        title=as_str(p.get("title"), "properties.title"),
        referrer=as_str(p.get("$referrer"), "properties.$referrer"),
        status_code=as_int(p.get("status_code"), "properties.status_code", nonneg=True),
    )


def _pageleave(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return Presence(**base, state="left")


def _autocapture(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    kind = p.get("$event_type")
    if kind == "click":
        text = p.get("$el_text")
        if text is None:  # else the clicked element's text="..." in the chain
            chain = p.get("$elements_chain")
            if type(chain) is str:
                text = dict(_ATTR.findall(_first_element(chain))).get("text")
        return Click(**base, target=element_target(p),
                     text=element_text(text, "properties.$el_text"))
    if kind == "submit":
        form = element_target(p)
        return FormSubmitted(**base, form=form.split("#", 1)[1] if form and "#" in form
                             else form)
    raise AdapterError("unknown_event", f"posthog $autocapture of {str(kind)[:40]!r}")


def _dead_click(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    return DeadClick(**base, target=element_target(p))


def _exception(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    listed = p.get("$exception_list")
    message = source = None
    if listed is not None:
        if type(listed) is not list or not listed or type(listed[0]) is not dict:
            raise invalid("properties.$exception_list", listed, "not a list of exceptions")
        exc = listed[0]
        message = as_str(first(exc, "value", "type"), "$exception_list[0].value")
        trace = exc.get("stacktrace")
        frames = trace.get("frames") if type(trace) is dict else None
        if type(frames) is list and frames and type(frames[-1]) is dict:
            source = as_str(frames[-1].get("filename"), "$exception_list[0].frames.filename")
    message = message or as_str(p.get("$exception_message"), "properties.$exception_message")
    if not message:
        raise invalid("properties.$exception_list", listed, "no exception message")
    return JsError(**base, message=message, source=source)


def _web_vitals(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    def metric(name: str) -> Any:
        key = f"$web_vitals_{name}_value"
        return as_float(p.get(key), f"properties.{key}", nonneg=True)

    return PagePerformance(**base, lcp_ms=metric("LCP"), inp_ms=metric("INP"),
                           cls=metric("CLS"), ttfb_ms=metric("TTFB"))


def _identify(base: dict[str, Any], p: dict[str, Any], msg: dict[str, Any]) -> Any:
    traits = first(msg, "$set") or p.get("$set") or {}
    if type(traits) is not dict:
        raise invalid("properties.$set", traits, "not an object")
    problem = trait_number_problem(traits)
    if problem:
        raise AdapterError("invalid_field", problem)
    return Identify(**base, traits=traits)


#: PostHog's own event names -> builder.
EVENTS: dict[str, _Builder] = {
    "$pageview": _pageview,
    "$pageleave": _pageleave,
    "$autocapture": _autocapture,
    "$dead_click": _dead_click,
    "$exception": _exception,
    "$web_vitals": _web_vitals,
    "$identify": _identify,
}

_DEVICES = {"Desktop": "desktop", "Mobile": "mobile", "Tablet": "tablet"}
_RAGECLICK = "is not mapped: its clicks come as $autocapture, where the burst is found"


def convert(msg: Any) -> Any:
    """One PostHog event as a canonical event; raises ``AdapterError`` (a per-item reason)."""
    if type(msg) is not dict:
        raise invalid("batch[]", msg, "not an object")
    name = msg.get("event")
    if type(name) is not str:
        raise invalid("event", name, "not an event name")
    build = EVENTS.get(name) or segment.TRACK_EVENTS.get(name)
    if build is None:
        why = _RAGECLICK if name == "$rageclick" else "is not mapped"
        raise AdapterError("unknown_event", f"posthog event {name[:80]!r} {why}")
    props = msg.get("properties")
    if props is None:
        props = {}
    elif type(props) is not dict:
        raise invalid("properties", props, "not an object")
    distinct = as_id(first(msg, "distinct_id") or props.get("distinct_id"), "distinct_id")
    named = as_id(props.get("$session_id"), "properties.$session_id")
    session = named or distinct
    if session is None:
        raise AdapterError("missing_id", "posthog event without $session_id or distinct_id")
    stamp = msg.get("timestamp")
    if stamp is None:
        raise invalid("timestamp", None, "required")
    customer = as_id(props.get("$user_id"), "properties.$user_id")
    if customer is None and (name == "$identify" or as_bool(
            props.get("$is_identified"), "properties.$is_identified")):
        customer = distinct  # $identify names the identified distinct id itself
    device = props.get("$device_type")
    base: dict[str, Any] = {
        "id": as_id(msg.get("uuid"), "uuid") or content_id(msg),
        "time": as_time(stamp, "timestamp"),
        "session_id": session,
        "customer_id": customer,
        "url": as_str(props.get("$current_url"), "properties.$current_url"),
        "device": _DEVICES.get(device) if type(device) is str else None,
    }
    if not named:
        base["derived_session"] = True
    return build(base, props, msg)




def adapt(payload: Any) -> Adapted:
    """A capture body (one event or ``{"batch": [...]}``) or a JSON array of events."""
    return convert_each(calls_of(payload, "PostHog")[0], convert)
