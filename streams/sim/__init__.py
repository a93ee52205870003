"""Realistic retail traffic with friction injected on purpose, and its ground truth.

A pure, deterministic generator: all randomness comes from ``random.Random(config.seed)``, time
is a simulated clock that starts at ``config.start`` (Unix seconds), and nothing is read or
written. The same config gives the same messages, byte for byte. ``frictionwatch simulate`` and
``frictionwatch demo`` send its output to Kafka (``streams.sim.traffic.send_live``); tests and
offline evaluation read it directly.

What comes out (``Simulator.messages()``): raw payloads in the formats users emit, one canonical
event each, in event-time order across all concurrent sessions:

- Segment calls (most sessions): ``page``, ``identify`` for logged-in customers, and ``track``
  with the V2 E-commerce names (Product List Viewed, Products Searched, Product Viewed, Product
  Added, Cart Viewed, Checkout Started, Checkout Step Viewed/Completed, Payment Info Entered,
  Order Completed, Coupon Applied/Denied) plus the friction names ``streams.adapters.segment``
  maps (Element Clicked, Dead Click, JS Error, API Error, Web Vitals, Form Submitted, Form
  Field Error, Payment Attempted / Payment Succeeded / Payment Declined);
- GA4 Measurement Protocol payloads for ``config.ga4_share`` of the sessions (page_view,
  view_item, add_to_cart, view_cart, begin_checkout, add_shipping_info, add_payment_info,
  purchase and the adapter's custom friction events);
- Zendesk-style trigger webhooks (``{"ticket": {...}}``) when a logged-in customer writes to
  support after a visit: created, later updated, then solved with a satisfaction rating.

Sessions arrive as a Poisson process. Its rate is ``events_per_second`` divided by the mean
number of messages per session, measured once per config on a calibration sample. Each session
lands, browses (pages, product views, clicks with x/y/target, Web Vitals), some add to cart,
some check out through four steps (1 contact, 2 shipping, 3 payment, 4 review, the step numbers
the adapters share), pay (maybe declined, with the reason) and complete the order. Device mix,
funnel rates and think times follow published retail figures (the constants of
``streams.sim.behaviour``, with sources): about 3% of sessions buy, about 60% of started
checkouts complete.

The clock runs a warm-up (``config.warmup``, 10 minutes by default) before ``start`` without
emitting, so the first message already comes from a shop in steady state: sessions in every
stage, at the full rate. Sessions and frictions that began before ``start`` are marked
``partial`` in the truth.

Friction (``FRICTION_TYPES``), each with the exact evidence a detector will look for:

==================  ==========================================================================
rage_click          3-6 clicks within 1 s, all within 30 px, on one unresponsive element
dead_click          a click, then (usually) a ``Dead Click`` event, then nothing for 4-10 s
error_click         a click, then a JS error within 1 s
form_error_loop     the same field of a checkout form failing validation 2-4 times
payment_declined    2+ declined payment attempts, each with its reason (1+ in an outage)
step_stall          time in a checkout step of 5-25 min, far above the step's typical time
backtrack           returning to the previous checkout step 2-3 times
slow_page           a page with LCP > 4 s and/or INP > 500 ms (Web Vitals)
error_page          a page view with a 4xx/5xx status
api_error           1-3 failed API calls (5xx, 429 or network error 0) during checkout
coupon_failure      a coupon denied 2-4 times
==================  ==========================================================================

Baseline behaviour never crosses those lines (LCP under 3.8 s, INP under 450 ms, clicks at
least 1.2 s apart, single declines, single form errors and single coupon denials only, step
times under 3x typical), so every occurrence in the output is in the truth. Friction changes
behaviour: a session hit by it may leave at once (``ABANDON_AFTER``) and is less patient after.

Two ways to inject it: per session, with ``config.friction[type]`` the chance that a session
able to hit it does (a page-level type at one of its pages, a checkout type at the step it
needs); and ``Incident``s, scheduled windows that hit every session passing the affected spot
(``INCIDENT_KINDS``: payment_outage, broken_field, slow_step, api_outage, promo_broken,
broken_button).

Ground truth: ``Simulator.truth`` lists a ``FrictionTruth`` per friction that reached the output
(``start`` is the event time of the first event showing it), ``Simulator.outcomes`` a
``SessionOutcome`` per session (converted, revenue, abandoned_step). ``write_truth`` writes both
and the incidents as JSONL; ``read_truth`` reads them back.

The package's modules:

- ``config``: the friction and incident vocabularies, ``Incident`` and ``SimConfig``;
- ``behaviour``: what shoppers do (``Behaviour``) and the figures it draws on;
- ``session``: one visit's state and the actions it yields;
- ``formats``: Segment and GA4 payloads, help-desk ticket times and wording;
- ``truth``: ``FrictionTruth``, ``SessionOutcome``, ``write_truth`` and ``read_truth``;
- ``run``: ``Simulator``, the run loop, and ``SimMessage``;
- ``traffic``: the paced send loop to Kafka; ``lifecycle``: subscription customers over months;
- ``tickets``: support-ticket topic bursts (``SimConfig.ticket_burst``) and a ticket-only
  generator.

>>> from streams.adapters import adapt
>>> from streams.sim import SimConfig, Simulator
>>> sim = Simulator(SimConfig(seed=7, events_per_second=50, duration=300, start=1767225600))
>>> msgs = list(sim.messages())
>>> round(len(msgs) / 300), msgs[0].source, msgs[0].payload["event"], msgs[0].time
(53, 'segment', 'Web Vitals', 1767225600.047)
>>> all(a.time <= b.time for a, b in zip(msgs, msgs[1:]))
True
>>> sum(len(adapt(m.payload, m.source).rejected) for m in msgs)
0
>>> len({t.friction for t in sim.truth}), sim.truth[0].friction, sim.outcomes[0].finished
(11, 'slow_page', True)
"""

from streams.sim.behaviour import ABANDON_AFTER, SHOP_URL
from streams.sim.config import (
    BREAKABLE_BUTTONS,
    DEFAULT_FRICTION,
    DEFAULT_START,
    FRICTION_TYPES,
    INCIDENT_KINDS,
    NO_FRICTION,
    PAGE_FRICTION,
    STEP_NAMES,
    Incident,
    SimConfig,
)
from streams.sim.formats import BLIND
from streams.sim.run import SimMessage, Simulator
from streams.sim.truth import FrictionTruth, SessionOutcome, TruthFile, read_truth, write_truth

__all__ = [
    "ABANDON_AFTER",
    "BLIND",
    "DEFAULT_FRICTION",
    "DEFAULT_START",
    "FRICTION_TYPES",
    "BREAKABLE_BUTTONS",
    "INCIDENT_KINDS",
    "NO_FRICTION",
    "PAGE_FRICTION",
    "SHOP_URL",
    "STEP_NAMES",
    "FrictionTruth",
    "Incident",
    "SessionOutcome",
    "SimConfig",
    "SimMessage",
    "Simulator",
    "TruthFile",
    "read_truth",
    "write_truth",
]
