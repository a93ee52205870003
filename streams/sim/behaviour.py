"""What shoppers do: ``Behaviour`` plays each session as a generator of actions (land, browse,
add to cart, check out step by step, pay, write to support), drawing every choice from the
run's RNG, with friction injected per session and by incidents. The constants below set the
funnel, the device and channel mix, the noise that is not friction and how friction drives
people away; each cites where its figure comes from."""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from detectors.holdout import assign, customer_unit
from streams.sim.config import FRICTION_TYPES, STEP_NAMES, Incident, SimConfig, step_number
from streams.sim.formats import iso_seconds, ticket_text
from streams.sim.session import END, TICKET, Act, Part, Session
from streams.sim.truth import FrictionTruth

__all__ = ["ABANDON_AFTER", "CHAT_FRICTION", "PATIENCE_AFTER", "SHOP_URL", "Behaviour"]

# --- how friction drives people away ---------------------------------------------------------

#: Chance that a session leaves right after a friction (before it, the step-by-step funnel).
#: Checkout errors drive away more people than a slow page; a session that stays is 15% less
#: likely to go on at each later decision (``PATIENCE_AFTER``).
ABANDON_AFTER: dict[str, float] = {
    "rage_click": 0.15,
    "dead_click": 0.12,
    "error_click": 0.25,
    "form_error_loop": 0.30,
    "payment_declined": 0.45,
    "step_stall": 0.35,
    "backtrack": 0.20,
    "slow_page": 0.15,
    "error_page": 0.35,
    "api_error": 0.35,
    "coupon_failure": 0.20,
}
PATIENCE_AFTER = 0.85

#: Frictions that alert, and so trigger a chat offer, at once (``detectors.alerting``'s
#: weight 1.0): the ones a chat offer can answer in time. Not a stall: the worker offers chat
#: on one only when the customer is known to be there (a heartbeat), which these sources do
#: not send (``Alerting.chat_presumed``).
CHAT_FRICTION = frozenset({"payment_declined", "form_error_loop", "api_error"})

# --- behaviour constants ---------------------------------------------------------------------

#: Share of sessions by device: retail traffic is about 55-60% mobile (Salesforce Shopping
#: Index, 2023-24), desktop most of the rest.
DEVICE_MIX = (("mobile", 0.55), ("desktop", 0.38), ("tablet", 0.07))
#: Viewport sizes (CSS px) for click coordinates.
_VIEWPORT = {"mobile": (390, 844), "desktop": (1440, 900), "tablet": (820, 1180)}
#: Sessions that add to cart: add-to-cart rates run about 8-12%, desktop highest
#: (e.g. Littledata and Dynamic Yield benchmarks).
BUYER_SHARE = {"desktop": 0.17, "mobile": 0.12, "tablet": 0.14}
#: Of sessions with a cart, the share that starts checkout (cart abandonment is about 70% in
#: Baymard's average of 49 studies; with step drop-off below, cart->order is about 30%).
CHECKOUT_SHARE = 0.6
#: Chance to go on from each checkout step, before friction. Product about 0.63, so about 60%
#: of started checkouts finish once payment and friction take their share.
STEP_CONTINUE = {1: 0.92, 2: 0.90, 3: 0.93, 4: 0.95}
#: Purchase intent at checkout, hidden: the log-odds that a shopper is set on buying are
#: ``base + channel + logged_in * logged in - cart * log(cart value / 80) + N(0, noise)``,
#: ``channel`` being the shopper's ``TRAFFIC_SOURCES`` term. Returning,
#: logged-in customers convert about twice as often as new visitors (e.g. Adobe Digital
#: Index and Monetate benchmarks), and big carts are abandoned more (price sensitivity).
#: Intent sets ``hesitancy`` = 2.5 x (1 - intent), about 1 on average: each step's chance to
#: leave, ``1 - STEP_CONTINUE``, is multiplied by it. So exits are not a coin flip the same
#: for everyone: who the shopper is and where they came from tells, as in real checkouts.
CHECKOUT_INTENT = {"base": 0.3, "logged_in": 0.8, "cart": 0.4, "noise": 1.0}
#: Where sessions come from: channel -> (share of sessions, what it adds to the log-odds of
#: intent, landing URL query, referrer). Email and direct visitors buy most readily, paid
#: social least (channel conversion benchmarks, e.g. Littledata, Wolfgang Digital).
TRAFFIC_SOURCES: dict[str, tuple[float, float, str, str | None]] = {
    "direct": (0.25, 0.4, "", None),
    "organic_search": (0.30, 0.0, "", "https://www.google.com/"),
    "paid_search": (0.15, 0.2, "?gclid=Cj0KCQ", None),
    "paid_social": (0.12, -0.9, "?utm_source=facebook&utm_medium=paid_social", None),
    "social": (0.08, -0.5, "", "https://www.instagram.com/"),
    "email": (0.07, 0.8, "?utm_source=newsletter&utm_medium=email", None),
    "referral": (0.03, 0.0, "", "https://blog.example.org/best-gifts"),
}
#: Mobile checkouts convert worse: each step's chance is multiplied by this.
MOBILE_STEP_FACTOR = 0.97
#: Of the shoppers who leave a checkout step, the share who leave on seeing it, without doing
#: anything in it: most at the review step, where the total with shipping and taxes shows
#: ("extra costs too high" is the top reason for abandoning a checkout in Baymard's surveys,
#: about half of answers). The rest leave after filling in or clicking something.
LOOK_AND_LEAVE = {1: 0.1, 2: 0.1, 3: 0.1, 4: 0.3}
#: Chance that a leave beacon is lost: beacons are sent as the page goes away, and mobile
#: browsers in particular may kill the page first (Speed Kit's 2023 unload-beacon benchmark:
#: the most reliable strategies arrive 95-98% of the time). Assumed, not measured here.
BEACON_LOST = {"desktop": 0.02, "tablet": 0.04, "mobile": 0.05}
#: Snowplow's activity tracking (``enableActivityTracking``): the first ``page_ping`` after
#: ``minimumVisitLength`` seconds on a page, then one each ``heartbeatDelay`` seconds, each
#: only if the shopper moved, scrolled, typed or clicked in that window. 10 and 10 are common
#: settings in Snowplow's docs. The share of windows with activity is assumed (a shopper
#: reading or stuck still moves the pointer or scrolls most of the time), not measured.
PING_MIN_VISIT_S = 10.0
PING_DELAY_S = 10.0
PING_ACTIVE = 0.9
#: The heartbeat's action kind.
PING = "Page Heartbeat"
#: Median seconds in each step; baseline times are capped at 3x this, stalls are far above.
STEP_MEDIAN_S = {1: 25.0, 2: 40.0, 3: 55.0, 4: 20.0}
#: Sessions that leave after the landing page: retail bounce rates are about 40%.
BOUNCE = 0.42
#: Chance to view one more page while browsing (geometric: about 3.5 pages for non-buyers).
BROWSE_CONTINUE = 0.72
#: Median seconds on a page while browsing; mobile visits are shorter.
PAGE_MEDIAN_S = {"desktop": 20.0, "mobile": 14.0, "tablet": 17.0}
#: Share of sessions logged in from the start; guests who log in at the contact step.
LOGGED_IN_SHARE = 0.3
LOGIN_AT_CHECKOUT = 0.25
#: Natural noise that is not friction: one JS error at page load, one field error, one decline.
PAGE_LOAD_JS_ERROR = 0.015
FORM_ERROR_ONCE = 0.06
DECLINE_ONCE = 0.03
COUPON_TRY = 0.12
COUPON_OK = 0.7
#: Repeated clicks that are not friction, per gap between two ordinary clicks (a stream of
#: their own: ``Behaviour.noise_rng``): a double or triple click that selects text (a
#: product's name, its description, a price to copy), and taps on a +/- quantity stepper.
#: Shoppers copy text on a few percent of product pages and change a quantity in a cart
#: about as often; these rates put a few hundred of each in the quality bench's traffic.
TEXT_SELECTION = 0.08
STEPPER_TAPS = 0.06
#: Payment methods and the provider each goes through.
PAYMENT_METHODS = (("card", "stripe", 0.8), ("paypal", "paypal", 0.15), ("klarna", "klarna", 0.05))
#: A hazard per page for page-level friction: a flagged session shows it at about its 2nd page.
PAGE_HAZARD = 0.45

_DECLINE_REASONS = ("insufficient_funds", "do_not_honor", "card_declined", "expired_card",
                    "incorrect_cvc")
_COUPON_REASONS = ("expired", "invalid_code", "minimum_not_met", "not_applicable")
_CATEGORIES = ("shoes", "dresses", "jackets", "bags", "home", "beauty", "outdoor", "kids")
_FIELDS = {1: ("email", "phone"), 2: ("postal_code", "address_line1", "city"),
           3: ("card_number", "expiry", "cvc")}
_FIELD_MESSAGES = {
    "email": "Enter a valid email address",
    "phone": "Enter a valid phone number",
    "postal_code": "Enter a valid postal code",
    "address_line1": "Enter an address",
    "city": "Enter a city",
    "card_number": "Your card number is incomplete",
    "expiry": "Your card's expiration date is in the past",
    "cvc": "Your card's security code is incomplete",
}
_API_ENDPOINTS = {2: "/api/checkout/shipping-rates", 3: "/api/payments/session",
                  4: "/api/checkout/totals"}
_JS_ERRORS = (
    "TypeError: Cannot read properties of undefined (reading 'submit')",
    "TypeError: null is not an object (evaluating 'btn.dataset')",
    "ReferenceError: PaymentRequest is not defined",
    "Uncaught (in promise) Error: Network request failed",
)
#: Elements and their place on the page (fractions of the viewport).
_TARGETS_BROWSE = (
    ("button.add-to-cart", 0.75, 0.55), ("a.size-guide", 0.7, 0.45),
    ("div.carousel-next", 0.9, 0.35), ("img.product-zoom", 0.35, 0.4),
    ("button.filter-apply", 0.15, 0.3), ("a.nav-sale", 0.3, 0.05),
)
_TARGETS_CHECKOUT = (
    ("button#continue", 0.5, 0.85), ("button#place-order", 0.5, 0.9),
    ("button.apply-coupon", 0.8, 0.6), ("input#postal_code", 0.4, 0.5),
    ("label.delivery-option", 0.3, 0.55),
)
_NORMAL_CLICKS = ("img.product-thumb", "button.size-option", "a.product-card", "button.color",
                  "summary.details", "a.breadcrumb")
#: Text shoppers select with a double or triple click.
_TEXT_TARGETS = ("h1.product-title", "p.product-description", "span.price", "td.size-chart",
                 "span.order-number")
#: Quantity steppers: (target, element text), the text as SDKs that send it report it.
_STEPPERS = (("button.qty-plus", "+"), ("button.qty-minus", "-"),
             ('button[aria-label="Increase quantity"]', None))
SHOP_URL = "https://shop.example.com"

# --- sessions --------------------------------------------------------------------------------


class Behaviour:
    """What shoppers do: session generators yielding actions. Holds the RNG and the catalog."""

    def __init__(self, config: SimConfig, rng: random.Random, incidents: Iterable[Incident]):
        self.config = config
        self.rng = rng
        self.rates = config.friction_rates
        start_ms = int(round(config.start * 1000))
        self.incidents: dict[str, list[tuple[int, int, Incident, dict[str, Any]]]] = {}
        for inc in incidents:
            s = start_ms + int(round(inc.start * 1000))
            self.incidents.setdefault(inc.kind, []).append(
                (s, s + int(round(inc.duration * 1000)), inc, inc.settings))
        catalog_rng = random.Random(f"{config.seed}:catalog")
        self.catalog: list[dict[str, Any]] = [
            {
                "product_id": f"sku-{i:05d}",
                "name": f"{cat.title()} item {i}",
                "category": cat,
                # Prices lognormal around $45, as apparel and home goods are.
                "price": round(min(600.0, math.exp(catalog_rng.gauss(math.log(45), 0.7))), 2),
            }
            for i, cat in enumerate(catalog_rng.choice(_CATEGORIES) for _ in range(400))
        ]
        self.seq = 0
        # A stream of its own, so that with no chat effect the output is what it always was.
        self.chat_rng = random.Random(f"{config.seed}:chat")
        # Presence (beacons, and who leaves a step on sight) draws from its own stream too,
        # so that everything else a session does is what it would be without it.
        self.presence_rng = random.Random(f"{config.seed}:presence")
        # Repeated clicks that are not friction (text selection, steppers) from their own
        # stream, placed between clicks that happen anyway, so they move nothing else.
        self.noise_rng = random.Random(f"{config.seed}:noise")
        # Heartbeats too: a run without Snowplow sessions is what it was before them.
        self.ping_rng = random.Random(f"{config.seed}:pings")
        # Follow-up returns too: with them off nothing draws from it.
        self.followup_rng = random.Random(f"{config.seed}:followup")
        self.ticket_base = rng.randrange(1_000_000, 9_000_000)
        self.tickets = 0

    # -- helpers ------------------------------------------------------------------------------

    def web_format(self, u: float) -> str:
        """The format of a session not sent as GA4, from what is left of its format draw."""
        cfg = self.config
        if u < cfg.snowplow_share:
            return "snowplow"
        if u < cfg.snowplow_share + cfg.posthog_share:
            return "posthog"
        return "segment"

    def incident(self, kind: str, t: int, step: int | None = None
                 ) -> tuple[Incident, dict[str, Any]] | None:
        for s, e, inc, settings in self.incidents.get(kind, ()):
            if s <= t < e and (step is None or step_number(settings.get("step")) == step):
                return inc, settings
        return None

    def new_session(self, t: int) -> Session:
        rng, cfg = self.rng, self.config
        self.seq += 1
        s = Session()
        u = rng.random()
        for device, share in DEVICE_MIX:
            s.device = device
            u -= share
            if u < 0:
                break
        hexid = f"{rng.getrandbits(64):016x}"
        s.sid = f"sess_{hexid}"
        s.key = s.sid.encode()
        u = rng.random()
        s.fmt = "ga4" if u < cfg.ga4_share else self.web_format(u - cfg.ga4_share)
        # Every session not sent as GA4 draws, as Segment sessions always have: the presence
        # stream, and so the session, is the same whichever of these formats it goes out in.
        # gtag and posthog-js send leave beacons, Snowplow none (it sends heartbeats instead).
        if s.fmt == "ga4":
            s.beacons = True
        else:
            drawn = self.presence_rng.random() < cfg.segment_beacons
            s.beacons = drawn if s.fmt == "segment" else s.fmt == "posthog"
        s.heartbeats = s.fmt == "snowplow"
        s.anon = f"anon_{rng.getrandbits(48):012x}"
        s.client_id = f"{rng.randrange(10**9, 10**10)}.{t // 1000}"
        s.ga4_device = {"category": s.device}
        s.customer_id = self.customer() if rng.random() < LOGGED_IN_SHARE else None
        u = rng.random()
        for source, (share, _, query, referrer) in TRAFFIC_SOURCES.items():
            s.source, s.landing = source, (query, referrer)
            u -= share
            if u < 0:
                break
        s.t = t
        s.last_t = t
        s.path = "/"
        s.url = SHOP_URL + "/"
        s.ctx = None
        s.pay_style = rng.random() < 0.5  # True: Payment Attempted; False: Succeeded/Declined
        s.dead_sdk = rng.random() < 0.75  # the client SDK reports dead clicks itself
        rates = self.rates
        s.flags = {f for f in FRICTION_TYPES if rates[f] > 0 and rng.random() < rates[f]}
        return s

    def customer(self) -> str:
        # Skewed: low ids come back more often (loyal customers).
        u = self.rng.random()
        return f"cust_{int(self.config.customers * u * u):06d}"

    def ms(self, seconds: float) -> int:
        return max(1, int(seconds * 1000))

    def lognormal(self, median: float, sigma: float, lo: float, hi: float) -> float:
        return min(hi, max(lo, median * math.exp(self.rng.gauss(0.0, sigma))))

    def xy(self, s: Session, fx: float, fy: float) -> tuple[float, float]:
        w, h = _VIEWPORT[s.device]
        rng = self.rng
        return (round(fx * w + rng.uniform(-20, 20)), round(fy * h + rng.uniform(-15, 15)))

    def truth(self, s: Session, friction: str, step: int | None,
              incident: Incident | None = None, **detail: Any) -> FrictionTruth:
        s.frictions.append(friction)
        return FrictionTruth(s.sid, s.customer_id, friction, 0.0, 0.0, step,
                             incident.label if incident else None, detail)

    def leaves(self, s: Session, friction: str) -> bool:
        """After a friction: maybe leave now; if not, less patient from here on."""
        leave = self.rng.random() < ABANDON_AFTER[friction]
        if friction in CHAT_FRICTION and self.chat_offer(s) and leave:
            assert s.outcome is not None
            s.outcome.rescued = True
            leave = False
        if leave:
            return True
        s.patience *= PATIENCE_AFTER
        return False

    def chat_offer(self, s: Session) -> bool:
        """A checkout blocker: the worker offers chat (treatment arm, first time in the
        session); True if the offer would keep a shopper who is about to leave."""
        o = s.outcome
        if s.chat_offered or o is None:
            return False
        s.chat_offered = True
        exp = self.config.chat_experiment
        unit = customer_unit(s.customer_id) if s.customer_id else "s:" + s.sid
        o.chat_arm = assign(unit, exp.name, exp.salt, exp.control_share)
        return o.chat_arm == "treatment" and self.chat_rng.random() < self.config.chat_effect

    def follow_up(self, s: Session) -> Session | None:
        """``s`` ended: if it left a cart or a checkout and can be reached (a customer id),
        the worker follows it up (treatment arm); the shopper's return visit that orders the
        cart (``SimConfig.followup_base`` / ``followup_effect``), or None."""
        o, cfg = s.outcome, self.config
        if o is None or o.converted or not o.cart or not s.customer_id or not s.registered:
            return None
        exp = cfg.followup_experiment
        o.followup_arm = assign(customer_unit(s.customer_id), exp.name, exp.salt,
                                exp.control_share)
        o.followup_at = s.last_t / 1000 + cfg.followup_delay
        rng = self.followup_rng
        u = rng.random()
        if u < cfg.followup_base:
            o.followup_return = "base"
        elif o.followup_arm == "treatment" and u < cfg.followup_base + cfg.followup_effect:
            o.followup_return = "caused"
        else:
            return None
        r = Session()
        r.sid = f"sess_{rng.getrandbits(64):016x}"
        r.key = r.sid.encode()
        o.returned = r.sid
        # From the email's link, as a Segment session (the formats draw nothing of their own).
        r.fmt, r.device, r.anon, r.client_id = "segment", s.device, s.anon, s.client_id
        r.ga4_device, r.customer_id, r.source, r.landing = s.ga4_device, s.customer_id, \
            "email", None
        r.cart, r.cart_value = list(s.cart), s.cart_value
        r.path, r.url, r.ctx = "/cart", SHOP_URL + "/cart", None
        r.pay_style, r.dead_sdk, r.flags, r.hesitancy = True, True, set(), 0.0
        r.t = r.last_t = int(o.followup_at * 1000) + self.ms(rng.uniform(60.0, 3600.0))
        r.gen = self.return_visit(r)
        return r

    def return_visit(self, s: Session) -> Iterator[Act]:
        """Back to the cart, and the order: a short session that buys what was left."""
        rng = self.followup_rng
        s.page_t = s.t
        yield (s.t, "page", {"path": s.path, "url": s.url, "title": "Cart"}, None)
        s.t += self.ms(rng.uniform(5.0, 30.0))
        value = round(s.cart_value, 2)
        yield (s.t, "Checkout Started", {"checkout_id": "chk_" + s.sid[5:], "value": value,
                                         "revenue": value, "currency": self.config.currency,
                                         "products": s.cart}, None)
        s.t += self.ms(rng.uniform(30.0, 180.0))
        yield (s.t, "Order Completed", {
            "order_id": "ord_" + s.sid[5:], "checkout_id": "chk_" + s.sid[5:],
            "total": value, "revenue": value, "currency": self.config.currency,
            "products": s.cart}, None)
        s.page_t = None
        yield (s.t, END, None, None)

    def goes_on(self, s: Session, p: float) -> bool:
        return self.rng.random() < p * s.patience

    def take(self, s: Session, friction: str, hazard: float = 1.0) -> bool:
        """Whether the session's per-session friction of this type shows here (once)."""
        if friction in s.flags and self.rng.random() < hazard:
            s.flags.discard(friction)
            return True
        return False

    # -- pages --------------------------------------------------------------------------------

    def page(
        self,
        s: Session,
        path: str,
        title: str,
        *,
        step: int | None = None,
        extra: tuple[str, dict[str, Any]] | None = None,
        extra_truth: FrictionTruth | None = None,
    ) -> Generator[Act, None, int]:
        """A page view with what comes with it: the page's own event (Product Viewed, Checkout
        Step Viewed...), Web Vitals, maybe page-level friction. Returns 1 if the session left,
        2 if the page was not shown (a 404 sent the shopper back), else 0."""
        rng = self.rng
        status = None
        diverted = False
        tr: FrictionTruth | None = None
        if self.take(s, "error_page", PAGE_HAZARD):
            status = rng.choice((500, 502, 503)) if step else 404
        if status is not None:
            tr = self.truth(s, "error_page", step, path=path, status_code=status)
            yield from self.beacon(s)
            s.path, s.url = path, SHOP_URL + path
            s.ctx = None
            s.page_t = s.t
            yield (s.t, "page", {"path": path, "url": s.url, "title": "Error",
                                 "status_code": status}, tr)
            if self.leaves(s, "error_page"):
                return 1
            s.t += self.ms(rng.uniform(2.0, 6.0))
            if status == 404:  # a dead link: back to where they came from
                path, title, extra, diverted = s.prev_path, s.prev_title, None, True
            # a 5xx: they reload the page
        prev_url = s.url
        yield from self.beacon(s)
        s.path, s.url = path, SHOP_URL + path
        s.ctx = None
        t0 = s.page_t = s.t
        props: dict[str, Any] = {"path": path, "url": s.url, "title": title}
        if s.landing is not None:  # the landing page: where the shopper came from
            query, referrer = s.landing
            s.landing = None
            s.url = props["url"] = s.url + query
            if referrer:
                props["referrer"] = referrer
        elif prev_url != s.url:
            props["referrer"] = prev_url
        yield (t0, "page", props, None)
        if extra is not None:
            s.t += self.ms(rng.uniform(0.02, 0.3))
            yield (s.t, extra[0], extra[1], extra_truth)
        if rng.random() < PAGE_LOAD_JS_ERROR:  # noise: a third-party script at load
            s.t = max(s.t, t0 + self.ms(rng.uniform(1.2, 2.5)))
            yield (s.t, "JS Error", {"message": "Script error.", "source": "third-party.js"}, None)
        # Web Vitals, reported once LCP is known. Baseline stays under the "poor" lines.
        slow = self.incident("slow_step", s.t, step) if step else None
        lcp = self.lognormal(1600.0 if s.device == "desktop" else 2300.0, 0.35, 400.0, 3800.0)
        inp = self.lognormal(120.0 if s.device == "desktop" else 180.0, 0.5, 16.0, 450.0)
        tr = None
        if slow is not None:
            inc, cfg = slow
            lcp = self.lognormal(float(cfg["lcp_ms"]), 0.25, 4500.0, 30000.0)
            inp = self.lognormal(float(cfg["inp_ms"]), 0.3, 550.0, 5000.0)
            tr = self.truth(s, "slow_page", step, inc, path=path, lcp_ms=round(lcp),
                            inp_ms=round(inp))
        elif self.take(s, "slow_page", PAGE_HAZARD):
            u = rng.random()
            if u < 0.75:
                lcp = rng.uniform(4500.0, 12000.0)
            if u >= 0.6:
                inp = rng.uniform(600.0, 2000.0)
            tr = self.truth(s, "slow_page", step, path=path, lcp_ms=round(lcp), inp_ms=round(inp))
        s.t = max(s.t, t0 + int(lcp)) + self.ms(rng.uniform(0.3, 1.0))
        yield (s.t, "Web Vitals", {"lcp": round(lcp), "inp": round(inp),
                                   "cls": round(rng.uniform(0.0, 0.2), 3),
                                   "ttfb": round(rng.uniform(150.0, 900.0))}, tr)
        if tr is not None and self.leaves(s, "slow_page"):
            return 1
        s.prev_path, s.prev_title = path, title
        # Click friction, at least 4 s after load and 1.5 s from any other click.
        for kind in ("rage_click", "dead_click", "error_click"):
            if self.take(s, kind, PAGE_HAZARD):
                s.t = max(s.t, t0 + 4000) + self.ms(rng.uniform(1.5, 6.0))
                yield from self.click_friction(s, kind, step)
                if self.leaves(s, kind):
                    return 1
        return 2 if diverted else 0

    def click_friction(self, s: Session, kind: str, step: int | None) -> Iterator[Act]:
        rng = self.rng
        target, fx, fy = rng.choice(_TARGETS_CHECKOUT if step else _TARGETS_BROWSE)
        x, y = self.xy(s, fx, fy)
        if kind == "rage_click":
            n = rng.randint(3, 6)
            tr = self.truth(s, kind, step, target=target, clicks=n, x=x, y=y, path=s.path)
            for i in range(n):
                if i:
                    s.t += self.ms(rng.uniform(0.1, 0.3))
                yield (s.t, "Element Clicked", {"x": x + rng.randint(-8, 8),
                                                "y": y + rng.randint(-8, 8),
                                                "target": target}, tr)
        elif kind == "dead_click":
            tr = self.truth(s, kind, step, target=target, x=x, y=y, path=s.path,
                            reported=s.dead_sdk)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, tr)
            if s.dead_sdk:
                s.t += self.ms(rng.uniform(1.0, 1.5))
                yield (s.t, "Dead Click", {"x": x, "y": y, "target": target}, tr)
            s.t += self.ms(rng.uniform(4.0, 10.0))  # nothing happens; they give up on it
            return
        else:
            message = rng.choice(_JS_ERRORS)
            tr = self.truth(s, kind, step, target=target, message=message, path=s.path)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, tr)
            s.t += self.ms(rng.uniform(0.1, 0.9))
            yield (s.t, "JS Error", {"message": message, "source": "/static/js/app.js"}, tr)
        s.t += self.ms(rng.uniform(1.5, 4.0))

    def clicks(self, s: Session, n: int, repeated: bool = True) -> Iterator[Act]:
        """Ordinary clicks, 2-8 s apart (never rage-like); with ``repeated``, text selections
        and stepper taps between them (``repeated_clicks``): on product and cart pages, where
        the steppers are, not in checkout steps."""
        rng = self.rng
        for _ in range(n):
            before = s.t
            s.t += self.ms(rng.uniform(2.0, 8.0))
            x, y = self.xy(s, rng.uniform(0.1, 0.9), rng.uniform(0.15, 0.85))
            if repeated:
                yield from self.repeated_clicks(s, before, s.t)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": rng.choice(_NORMAL_CLICKS)},
                   None)

    def repeated_clicks(self, s: Session, after: int, until: int) -> Iterator[Act]:
        """Maybe a text selection (a double or triple click) or taps on a quantity stepper,
        strictly between two clicks at ``after`` and ``until`` (ms) and more than a second
        from each, so no burst takes them in: not friction (no truth), and nothing for a
        detector to flag. Draws only from ``noise_rng``."""
        nr = self.noise_rng
        u = nr.random()
        if u < TEXT_SELECTION:
            target, text = nr.choice(_TEXT_TARGETS), None
            n, lo, hi = nr.choice((2, 2, 3)), 0.08, 0.25  # OS double-click interval: <= 0.5 s
        elif u < TEXT_SELECTION + STEPPER_TAPS:
            target, text = nr.choice(_STEPPERS)
            n, lo, hi = nr.randint(3, 6), 0.15, 0.35
        else:
            return
        gaps = [self.ms(nr.uniform(lo, hi)) for _ in range(n - 1)]
        room = until - after - 2200 - sum(gaps)
        if room <= 0:
            return
        t = after + 1100 + int(nr.uniform(0.0, room))
        w, h = _VIEWPORT[s.device]  # not ``xy``: that draws from the main stream
        x, y = round(nr.uniform(0.1, 0.9) * w), round(nr.uniform(0.15, 0.85) * h)
        for i in range(n):
            if i:
                t += gaps[i - 1]
            props = {"x": x + nr.randint(-3, 3), "y": y + nr.randint(-3, 3), "target": target}
            if text is not None:
                props["text"] = text
            yield (t, "Element Clicked", props, None)

    def beacon(self, s: Session) -> Iterator[Act]:
        """The leave beacon of the page on show, if the source sends them and it gets through."""
        if s.page_t is not None and s.beacons and \
                self.presence_rng.random() >= BEACON_LOST[s.device]:
            yield (s.t, "Page Left", {"engagement_time_msec": max(1, s.t - s.page_t)}, None)
        s.page_t = None

    def navigate(self, s: Session, dwell: float, target: str) -> Iterator[Act]:
        """Stay ``dwell`` seconds in all, then click a link; the next page follows."""
        rng = self.rng
        s.t += self.ms(max(1.5, dwell - 6.0))
        x, y = self.xy(s, rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9))
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, None)
        s.t += self.ms(rng.uniform(0.3, 0.8))

    # -- a session ----------------------------------------------------------------------------

    def session(self, s: Session) -> Iterator[Act]:
        yield from self.web(s)
        if s.page_t is not None:  # the last page goes away, a moment after the last act
            s.t += self.ms(self.presence_rng.uniform(0.5, 8.0))
            yield from self.beacon(s)
        yield (s.t, END, None, None)
        yield from self.support(s)

    def pings(self, s: Session, act: Act, until: int) -> list[Act]:
        """The heartbeats of activity tracking (``PING_*``) after ``act`` of ``s`` and before
        its next act at ``until`` (ms): a page is in use from its view until the session's
        next act (the next page's view, an action on it, the end of the visit), so whoever
        stays, stuck or not, pings and whoever has gone does not. The run loop queues them
        apart from the acts, so the sessions and their draws are those of a run without them.
        Draws only from ``ping_rng``."""
        kind = act[1]
        if kind == "page":
            s.ping_t = act[0] + self.ms(PING_MIN_VISIT_S)
        elif kind is END:
            s.ping_t = None
        due, out = s.ping_t, list[Act]()
        if due is None:
            return out
        pr, delay = self.ping_rng, self.ms(PING_DELAY_S)
        while due < until:
            if pr.random() < PING_ACTIVE:
                out.append((due, PING, {}, None))
            due += delay
        s.ping_t = due
        return out

    def identify(self, s: Session) -> Act:
        num = int(s.customer_id[5:]) if s.customer_id else 0
        traits = {"email": f"{s.customer_id}@example.com",
                  "loyalty_tier": ("bronze", "silver", "gold")[num % 3],
                  "orders_count": num % 17}
        return (s.t, "identify", traits, None)

    def web(self, s: Session) -> Iterator[Act]:
        rng = self.rng
        if s.customer_id and s.fmt != "ga4":  # the renderer drops it where there is no call
            yield self.identify(s)
            s.t += self.ms(rng.uniform(0.05, 0.4))
        buyer = rng.random() < BUYER_SHARE[s.device]
        # Landing: home, a category (ads, email), a product (search, social) or a search.
        u = rng.random()
        where = "home" if u < 0.35 else "category" if u < 0.65 else "product" if u < 0.9 else \
            "search"
        median = PAGE_MEDIAN_S[s.device]
        pages = 0
        while True:
            product = None
            if where == "home":
                r = yield from self.page(s, "/", "Home")
            elif where == "category":
                cat = rng.choice(_CATEGORIES)
                r = yield from self.page(s, f"/c/{cat}", cat.title(), extra=(
                    "Product List Viewed", {"list_id": cat, "category": cat}))
            elif where == "search":
                q = rng.choice(_CATEGORIES)
                r = yield from self.page(s, f"/search?q={q}", "Search", extra=(
                    "Products Searched", {"query": q}))
            else:
                product = rng.choice(self.catalog)
                r = yield from self.page(s, f"/p/{product['product_id']}", product["name"],
                                         extra=("Product Viewed", self.product_props(product)))
            if r == 1:
                return
            if r == 2:
                product = None
            pages += 1
            dwell = self.lognormal(median, 0.8, 3.0, 150.0)
            t_in = s.t
            yield from self.clicks(s, rng.randint(0, 2))
            if product is not None and buyer and rng.random() < 0.5:
                s.t += self.ms(rng.uniform(2.0, 10.0))
                yield from self.add_to_cart(s, product)
                if rng.random() < 0.7 or len(s.cart) > 2:  # straight to the cart
                    yield from self.navigate(s, 3.0, "a.mini-cart")
                    yield from self.cart_and_checkout(s)
                    return
            if pages == 1 and not buyer and rng.random() < BOUNCE:
                return
            go_on = 0.9 if buyer else BROWSE_CONTINUE
            if pages >= 30 or not self.goes_on(s, go_on):
                if s.cart and rng.random() < 0.5:  # a last look at the cart before leaving
                    yield from self.navigate(s, dwell - (s.t - t_in) / 1000, "a.mini-cart")
                    yield from self.page(s, "/cart", "Cart", extra=("Cart Viewed",
                                                                    self.cart_props(s)))
                return
            nxt = rng.random()
            if where == "home":
                where = "category" if nxt < 0.5 else "search" if nxt < 0.7 else "product"
            elif where in ("category", "search"):
                where = "product" if nxt < 0.8 else "category"
            else:
                where = "product" if nxt < 0.45 else "category" if nxt < 0.85 else "search"
            if buyer and where != "product" and rng.random() < 0.5:
                where = "product"  # people who mean to buy head for products
            yield from self.navigate(s, dwell - (s.t - t_in) / 1000,
                                     "a.product-card" if where == "product" else "a.nav-link")

    def product_props(self, product: dict[str, Any]) -> dict[str, Any]:
        return {**product, "sku": product["product_id"], "currency": self.config.currency}

    def cart_props(self, s: Session) -> dict[str, Any]:
        return {"cart_id": "cart_" + s.sid[5:], "cart_value": round(s.cart_value, 2),
                "currency": self.config.currency, "products": s.cart}

    def add_to_cart(self, s: Session, product: dict[str, Any]) -> Iterator[Act]:
        qty = 1 if self.rng.random() < 0.85 else 2
        s.cart.append({**product, "quantity": qty})
        s.cart_value += product["price"] * qty
        x, y = self.xy(s, 0.75, 0.55)
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button.add-to-cart"}, None)
        s.t += self.ms(self.rng.uniform(0.2, 0.8))
        yield (s.t, "Product Added", {**self.product_props(product), "quantity": qty,
                                      "cart_value": round(s.cart_value, 2)}, None)

    def cart_and_checkout(self, s: Session) -> Iterator[Act]:
        rng = self.rng
        r = yield from self.page(s, "/cart", "Cart", extra=("Cart Viewed", self.cart_props(s)))
        if r:
            return
        if not self.goes_on(s, CHECKOUT_SHARE):
            yield from self.clicks(s, rng.randint(0, 2))
            s.t += self.ms(self.lognormal(20.0, 0.6, 3.0, 120.0))
            return
        yield from self.navigate(s, self.lognormal(15.0, 0.5, 3.0, 60.0), "button#checkout")
        yield from self.checkout(s)

    # -- checkout -----------------------------------------------------------------------------

    def checkout(self, s: Session) -> Iterator[Act]:
        rng = self.rng
        rates_step = {
            "form_error_loop": rng.randint(1, 3),
            "step_stall": rng.choice((1, 2, 3, 3, 4)),
            "backtrack": rng.randint(2, 4),
            "api_error": rng.randint(2, 4),
            "coupon_failure": 4,
        }
        value = round(s.cart_value, 2)
        ci = CHECKOUT_INTENT
        logit = (ci["base"] + TRAFFIC_SOURCES[s.source][1]
                 + ci["logged_in"] * (s.customer_id is not None)
                 - ci["cart"] * math.log(max(s.cart_value, 1.0) / 80.0)
                 + rng.gauss(0.0, ci["noise"]))
        s.hesitancy = 2.5 * (1.0 - 1.0 / (1.0 + math.exp(-logit)))
        s.t += self.ms(rng.uniform(0.05, 0.3))
        yield (s.t, "Checkout Started", {"checkout_id": "chk_" + s.sid[5:], "value": value,
                                         "revenue": value, "currency": self.config.currency,
                                         "products": s.cart}, None)
        step = 1
        while step <= 4:
            r = yield from self.step(s, step, rates_step)
            if r:
                return
            step += 1
        yield from self.confirmation(s)

    def step_view(self, s: Session, step: int, tr: FrictionTruth | None = None
                  ) -> Generator[Act, None, int]:
        name = STEP_NAMES[step]
        s.last_step = step
        return (yield from self.page(
            s, f"/checkout/{name}", f"Checkout: {name}", step=step,
            extra=("Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                            "step_name": name}), extra_truth=tr))

    def step_done(self, s: Session, step: int, tr: FrictionTruth | None = None) -> Act:
        name = STEP_NAMES[step]
        props: dict[str, Any] = {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                 "step_name": name}
        if step == 3:
            return (s.t, "Payment Info Entered", {**props, "payment_method": "credit_card"}, tr)
        if step == 2:
            props["shipping_method"] = self.rng.choice(("standard", "express", "pickup"))
        return (s.t, "Checkout Step Completed", props, tr)

    def step(self, s: Session, step: int, where: dict[str, int]) -> Part:
        """One checkout step. Returns True if the session left during it."""
        rng = self.rng
        median = STEP_MEDIAN_S[step] * (1.2 if s.device == "mobile" else 1.0)
        dwell = self.lognormal(median, 0.5, median / 4, median * 3)
        stall_tr = None
        if where["step_stall"] == step and self.take(s, "step_stall"):
            dwell = min(1500.0, max(300.0, median * rng.uniform(6.0, 15.0)))
            stall_tr = self.truth(s, "step_stall", step, step_name=STEP_NAMES[step],
                                  seconds=round(dwell, 1), typical_seconds=median)
        slow = self.incident("slow_step", s.t, step)
        if slow is not None:
            dwell += float(slow[1]["extra_seconds"])
        r = yield from self.step_view(s, step, stall_tr)
        if r:
            return True
        p = 1.0 - (1.0 - STEP_CONTINUE[step]) * s.hesitancy
        p *= MOBILE_STEP_FACTOR if s.device == "mobile" else 1.0
        # Some of those who leave the step do so on sight (``LOOK_AND_LEAVE``); the chance to
        # go on at its end is raised to match, so the step loses as many as before.
        if stall_tr is None:
            on_sight = (1.0 - min(1.0, p * s.patience)) * LOOK_AND_LEAVE[step]
            pr = self.presence_rng
            if pr.random() < on_sight:
                s.t += self.ms(min(90.0, max(3.0, 12.0 * math.exp(pr.gauss(0.0, 0.6)))))
                return True
            p /= 1.0 - on_sight
        if stall_tr is not None:
            # Once the page has loaded, nothing for ``dwell``. The stall ends with their next
            # event, or, if they never come back, when they would have.
            s.t += int(dwell * 1000)
            stall_tr.end = s.t / 1000
            if self.leaves(s, "step_stall"):
                return True
            s.t += 1
            yield (s.t, "Element Clicked", {**dict(zip(("x", "y"), self.xy(s, 0.5, 0.4),
                                                       strict=True)),
                                            "target": "input:focus"}, stall_tr)
            dwell = median
        if step >= 2 and where["backtrack"] == step and self.take(s, "backtrack"):
            r = yield from self.backtrack(s, step)
            if r:
                return True
        if step == 1 and s.customer_id is None and rng.random() < LOGIN_AT_CHECKOUT:
            s.t += self.ms(rng.uniform(5.0, 15.0))
            s.customer_id = self.customer()
            if s.fmt != "ga4":
                yield self.identify(s)
        if step in _API_ENDPOINTS:
            r = yield from self.api_calls(s, step, where["api_error"] == step)
            if r:
                return True
        t_in = s.t
        yield from self.clicks(s, rng.randint(1, 3), repeated=False)
        if step in _FIELDS:
            r = yield from self.form(s, step, where["form_error_loop"] == step)
            if r:
                return True
        if step == 4:
            r = yield from self.coupon(s, step)
            if r:
                return True
        s.t = max(s.t, t_in + int(dwell * 1000 * 0.6))
        if not self.goes_on(s, p):
            s.t += self.ms(rng.uniform(2.0, 20.0))
            return True
        if step == 4:
            return (yield from self.pay(s))
        s.t += self.ms(rng.uniform(0.5, 3.0))
        x, y = self.xy(s, 0.5, 0.85)
        if (yield from self.broken_button(s, step, "button#continue", x, y)):
            return True
        yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button#continue"}, None)
        s.t += self.ms(rng.uniform(0.2, 0.8))
        yield self.step_done(s, step)
        s.t += self.ms(rng.uniform(0.3, 1.5))
        return False

    def broken_button(self, s: Session, step: int, target: str, x: float, y: float) -> Part:
        """If a ``broken_button`` incident has broken ``target`` now: the shopper's clicks on
        it, each dead (a dead click each, reported by the SDK where it reports them), a few
        seconds apart, until it works again or they give up. True: they left. Draws from the
        main stream only during such an incident."""
        rng = self.rng
        for tries in range(3):
            broken = self.incident("broken_button", s.t)
            if broken is None or broken[1]["target"] != target:
                return False
            tr = self.truth(s, "dead_click", step, broken[0], target=target, x=x, y=y,
                            path=s.path, reported=s.dead_sdk)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": target}, tr)
            if s.dead_sdk:
                s.t += self.ms(rng.uniform(1.0, 1.5))
                yield (s.t, "Dead Click", {"x": x, "y": y, "target": target}, tr)
            s.t += self.ms(rng.uniform(4.0, 10.0))  # nothing happens; they wait, try again
            if tries and self.leaves(s, "dead_click"):
                return True
        return True  # three dead clicks: they give up

    def backtrack(self, s: Session, step: int) -> Part:
        rng = self.rng
        returns = rng.randint(2, 3)
        tr = self.truth(s, "backtrack", step, from_step=step, to_step=step - 1, returns=returns)
        for _ in range(returns):
            s.t += self.ms(rng.uniform(4.0, 15.0))
            prev = step - 1
            s.last_step = prev
            name = STEP_NAMES[prev]
            yield (s.t, "Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": prev,
                                                 "step_name": name}, tr)
            s.t += self.ms(rng.uniform(5.0, 20.0))
            yield self.step_done(s, prev, tr)
            s.t += self.ms(rng.uniform(0.5, 2.0))
            s.last_step = step
            yield (s.t, "Checkout Step Viewed", {"checkout_id": "chk_" + s.sid[5:], "step": step,
                                                 "step_name": STEP_NAMES[step]}, tr)
        return self.leaves(s, "backtrack")

    def api_calls(self, s: Session, step: int, injected: bool) -> Part:
        rng = self.rng
        outage = self.incident("api_outage", s.t, step)
        if outage is not None:
            inc, cfg = outage
            endpoint, status, p_fail = cfg["endpoint"], int(cfg["status_code"]), \
                float(cfg["fail_rate"])
        elif injected and self.take(s, "api_error"):
            inc, endpoint = None, _API_ENDPOINTS[step]
            status, p_fail = rng.choice((500, 502, 503, 504, 429, 0)), 1.0
        else:
            return False
        s.t += self.ms(rng.uniform(0.5, 2.5))
        if rng.random() >= p_fail:
            return False
        tr = self.truth(s, "api_error", step, inc, endpoint=endpoint, status_code=status,
                        failures=0)
        for attempt in range(rng.randint(1, 3)):
            if attempt:
                s.t += self.ms(rng.uniform(3.0, 10.0))
                if outage is not None and rng.random() >= p_fail:
                    break
            tr.detail["failures"] += 1
            yield (s.t, "API Error", {"endpoint": endpoint, "status_code": status,
                                      "method": "POST"}, tr)
        return self.leaves(s, "api_error")

    def form(self, s: Session, step: int, injected: bool) -> Part:
        """Fill and submit the step's form. Returns True if the session left."""
        rng = self.rng
        form = STEP_NAMES[step]
        broken = self.incident("broken_field", s.t, step)
        if broken is not None:
            inc, cfg = broken
            field_name, message = str(cfg["field"]), str(cfg["message"])
            failures = 2
            while failures < 6 and rng.random() < 0.6:  # no workaround found yet; they retry
                failures += 1
            tr = self.truth(s, "form_error_loop", step, inc, form=form, field=field_name,
                            errors=failures, message=message)
        elif injected and self.take(s, "form_error_loop"):
            inc, field_name = None, rng.choice(_FIELDS[step])
            message = _FIELD_MESSAGES[field_name]
            failures = rng.randint(2, 4)
            tr = self.truth(s, "form_error_loop", step, form=form, field=field_name,
                            errors=failures, message=message)
        else:
            tr = None
            failures = 1 if rng.random() < FORM_ERROR_ONCE else 0
            field_name = rng.choice(_FIELDS[step])
            message = _FIELD_MESSAGES[field_name]
        for i in range(failures):
            s.t += self.ms(rng.uniform(6.0, 25.0) if i else rng.uniform(2.0, 10.0))
            yield (s.t, "Form Field Error", {"form": form, "field": field_name,
                                             "message": message}, tr)
            if s.fmt != "ga4":  # GA4's form_submit has no success flag (Snowplow's: dropped)
                s.t += self.ms(rng.uniform(0.01, 0.05))
                yield (s.t, "Form Submitted", {"form": form, "success": False}, tr)
        if tr is not None:
            if broken is not None:
                if rng.random() < 0.7:  # most give up on a form that rejects what is right
                    return True
                s.patience *= PATIENCE_AFTER
            elif self.leaves(s, "form_error_loop"):
                return True
        s.t += self.ms(rng.uniform(3.0, 15.0))
        yield (s.t, "Form Submitted", {"form": form, "success": True}, None)
        return False

    def coupon(self, s: Session, step: int) -> Part:
        rng = self.rng
        promo = self.incident("promo_broken", s.t)
        cart_id = "cart_" + s.sid[5:]
        if promo is not None and rng.random() < float(promo[1]["uptake"]):
            inc, cfg = promo
            tries = rng.randint(2, 4)
            codes = [str(cfg["code"])] * tries
            reasons = [str(cfg["reason"])] * tries
        elif self.take(s, "coupon_failure"):
            inc, tries = None, rng.randint(2, 4)
            codes = [rng.choice(("WELCOME10", "FREESHIP", "SAVE15", "VIP25")) for _ in
                     range(tries)]
            reasons = [rng.choice(_COUPON_REASONS) for _ in range(tries)]
        else:
            if rng.random() < COUPON_TRY:
                s.t += self.ms(rng.uniform(3.0, 12.0))
                ok = rng.random() < COUPON_OK
                props = {"cart_id": cart_id, "coupon_id": "WELCOME10"}
                if ok:
                    yield (s.t, "Coupon Applied", props, None)
                else:
                    yield (s.t, "Coupon Denied", {**props, "reason": "expired"}, None)
            return False
        tr = self.truth(s, "coupon_failure", step, inc, codes=codes, reasons=reasons,
                        failures=tries)
        for i, (code, reason) in enumerate(zip(codes, reasons, strict=True)):
            s.t += self.ms(rng.uniform(4.0, 15.0))
            x, y = self.xy(s, 0.8, 0.6)
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button.apply-coupon"},
                   tr if i else None)
            s.t += self.ms(rng.uniform(0.3, 0.9))
            yield (s.t, "Coupon Denied", {"cart_id": cart_id, "coupon_id": code,
                                          "reason": reason}, tr)
        return self.leaves(s, "coupon_failure")

    def pay(self, s: Session) -> Part:
        """Place the order: payment attempts until success or the shopper gives up.

        A decline is friction when injected (2-3 in a row) or caused by an outage; a natural
        decline (``DECLINE_ONCE``) happens at most once and is noise."""
        rng = self.rng
        u = rng.random()
        method, provider = "card", "stripe"
        acc = 0.0
        for m, prov, share in PAYMENT_METHODS:
            acc += share
            if u < acc:
                method, provider = m, prov
                break
        forced = rng.randint(2, 3) if self.take(s, "payment_declined") else 0
        tr: FrictionTruth | None = None
        declines = 0
        amount = round(s.cart_value, 2)
        for attempt in range(5):
            s.t += self.ms(rng.uniform(15.0, 60.0) if attempt else rng.uniform(1.0, 4.0))
            x, y = self.xy(s, 0.5, 0.9)
            if (yield from self.broken_button(s, 4, "button#place-order", x, y)):
                return True
            yield (s.t, "Element Clicked", {"x": x, "y": y, "target": "button#place-order"},
                   tr)  # within a run of declines: part of it
            s.t += self.ms(rng.uniform(0.8, 3.0))
            outage = self.incident("payment_outage", s.t)
            if outage is not None and outage[1]["provider"] != provider:
                outage = None
            reason = None
            noise = False
            if outage is not None and rng.random() < float(outage[1]["decline_rate"]):
                reason = str(outage[1]["reason"])
            elif declines < forced:  # an outage starting mid-run does not end it
                reason = rng.choice(_DECLINE_REASONS)
            elif declines == 0 and rng.random() < DECLINE_ONCE:
                reason, noise = rng.choice(_DECLINE_REASONS), True
            else:
                outage = None  # not declined
            props: dict[str, Any] = {"payment_method": method, "provider": provider,
                                     "amount": amount, "currency": self.config.currency}
            if reason is None:
                if s.pay_style:
                    yield (s.t, "Payment Attempted", {**props, "success": True}, None)
                else:
                    yield (s.t, "Payment Succeeded", props, None)
                s.t += self.ms(rng.uniform(0.3, 1.2))
                yield self.step_done(s, 4)
                yield from self.order(s)
                return False
            declines += 1
            act_tr = None
            if not noise:
                if tr is None:
                    tr = self.truth(s, "payment_declined", 4,
                                    outage[0] if outage is not None else None,
                                    declines=0, reasons=[], provider=provider, method=method)
                tr.detail["declines"] += 1
                tr.detail["reasons"].append(reason)
                act_tr = tr
            if s.pay_style:
                yield (s.t, "Payment Attempted", {**props, "success": False,
                                                  "decline_reason": reason}, act_tr)
            else:
                yield (s.t, "Payment Declined", {**props, "reason": reason}, act_tr)
            if noise:
                if rng.random() >= 0.8:  # most try again, and then it works
                    return True
                continue
            if declines < forced and outage is None:
                continue  # one more try before doubting the card
            if (declines >= 2 or outage is not None) and self.leaves(s, "payment_declined"):
                return True
            if rng.random() >= (0.85, 0.6, 0.4, 0.25, 0.0)[declines - 1] * s.patience:
                return True
            if rng.random() < 0.3:  # another way to pay
                method, provider = ("paypal", "paypal") if provider != "paypal" else \
                    ("card", "stripe")
        return True

    def order(self, s: Session) -> Iterator[Act]:
        rng = self.rng
        revenue = round(s.cart_value, 2)
        shipping = 0.0 if revenue >= 75 else 5.99
        tax = round(revenue * 0.08, 2)
        s.t += self.ms(rng.uniform(0.2, 1.0))
        yield (s.t, "Order Completed", {
            "order_id": "ord_" + s.sid[5:], "checkout_id": "chk_" + s.sid[5:],
            "total": round(revenue + shipping + tax, 2), "revenue": revenue,
            "shipping": shipping, "tax": tax, "currency": self.config.currency,
            "products": s.cart}, None)

    def confirmation(self, s: Session) -> Iterator[Act]:
        s.t += self.ms(self.rng.uniform(0.5, 2.0))
        yield from self.page(s, "/checkout/confirmation", "Thank you")
        s.t += self.ms(self.lognormal(20.0, 0.5, 5.0, 90.0))

    # -- support ------------------------------------------------------------------------------

    def support(self, s: Session) -> Iterator[Act]:
        if s.customer_id is None:
            return
        rng = self.rng
        o = s.outcome
        converted = o is not None and o.converted
        share = self.config.support_share
        p = share / 10 if converted else share if s.frictions else share / 25
        if rng.random() >= p:
            return
        self.tickets += 1
        tid = self.ticket_base + self.tickets
        about = s.frictions[0] if s.frictions else ("order" if converted else "product")
        subject, text, priority = ticket_text(about, s, rng)
        channel = rng.choices(("email", "chat", "web", "voice"), (45, 30, 20, 5))[0]
        created = (s.t // 1000 + int(rng.uniform(120, 1800))) * 1000
        ticket: dict[str, Any] = {
            "id": tid,
            "url": f"https://shop.zendesk.com/api/v2/tickets/{tid}.json",
            "via": {"channel": channel},
            "subject": subject,
            "description": text,
            "priority": priority,
            "requester": {"id": 900_000_000 + int(s.customer_id[5:]),
                          "external_id": s.customer_id},
            "requester_id": 900_000_000 + int(s.customer_id[5:]),
            "tags": ["simulated", about],
            "custom_fields": [{"name": "session_id", "value": s.sid}],
            "created_at": iso_seconds(created),
        }
        yield (created, TICKET, {"ticket": {**ticket, "status": "new",
                                             "updated_at": ticket["created_at"]}}, None)
        # An agent answers within the hour and solves it within a few (Zendesk's benchmark
        # first reply time is a few hours; shortened so runs of an hour show every action).
        updated = created + int(rng.uniform(300, 2700)) * 1000
        yield (updated, TICKET, {"ticket": {
            **ticket, "status": "pending", "updated_at": iso_seconds(updated),
            "latest_comment": {"body": "Thanks for reaching out, we are looking into it."}}},
            None)
        solved = updated + int(rng.uniform(900, 7200)) * 1000
        good = rng.random() < (0.8 if converted else 0.55)
        yield (solved, TICKET, {"ticket": {
            **ticket, "status": "solved", "updated_at": iso_seconds(solved),
            "satisfaction_rating": {"score": "good" if good else "bad"}}}, None)
