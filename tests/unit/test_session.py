"""SessionProcessor and customer state: folding, replay skipping, detectors, encoding."""

from __future__ import annotations

from detectors import events as ev
from detectors.base import BaseDetector
from detectors.customer import apply_customer, decode_customer, encode_customer
from detectors.session import SessionProcessor, decode_state, encode_state, is_replay


def _checkout(sid: str = "s1") -> list[ev.Event]:
    return [
        ev.PageView(id="1", time=10.0, session_id=sid, device="mobile"),
        ev.CartUpdated(id="2", time=11.0, session_id=sid, action="add", cart_value=40.0),
        ev.CheckoutStarted(id="3", time=12.0, session_id=sid, customer_id="c9"),
        ev.CheckoutStepViewed(id="4", time=13.0, session_id=sid, step=2),
        ev.PaymentAttempted(id="5", time=14.0, session_id=sid, success=False,
                            decline_reason="insufficient_funds"),
        ev.CheckoutStepViewed(id="6", time=15.0, session_id=sid, step=1),
        ev.OrderCompleted(id="7", time=16.0, session_id=sid, revenue=40.0),
    ]


def test_fold_tracks_cart_steps_failures_and_outcome() -> None:
    state, signals = SessionProcessor().apply(None, _checkout(), origin=("i0", 5))
    assert signals == []
    assert (state.events, state.page_views, state.cart_value) == (7, 1, 40.0)
    assert (state.checkout_step, state.max_checkout_step) == (1, 2)
    assert state.payment_failures == 1 and state.converted and state.revenue == 40.0
    assert (state.customer_id, state.device) == ("c9", "mobile")
    assert (state.first_time, state.last_time) == (10.0, 16.0)


def test_replayed_message_is_skipped_and_newer_one_applied() -> None:
    proc = SessionProcessor()
    state, _ = proc.apply(None, _checkout()[:2], origin=("i0", 5))
    state, _ = proc.apply(state, _checkout()[2:4], origin=("i0", 5))  # re-sent after a crash
    assert state.events == 2
    state, _ = proc.apply(state, _checkout()[2:4], origin=("i1", 1))  # another partition
    assert state.events == 4 and state.positions == {"i0": 5, "i1": 1}
    assert is_replay(state.positions, ("i1", 0)) and not is_replay(state.positions, ("i1", 2))
    assert not is_replay(state.positions, None)


def test_out_of_order_events_keep_latest_time() -> None:
    evs = [ev.PageView(id="a", time=20.0, session_id="s"), ev.PageView(id="b", time=5.0,
                                                                        session_id="s")]
    state, _ = SessionProcessor().apply(None, evs)
    assert state.last_time == 20.0


class _CountClicks(BaseDetector):
    """A toy detector: a signal on every third click, memory kept in detector_state."""

    name = "three_clicks"
    handles = (ev.Click,)

    def update(self, state, event):  # type: ignore[no-untyped-def]
        mem = self.memory(state)
        mem["n"] = mem.get("n", 0) + 1
        return () if mem["n"] % 3 else [self.signal(state, event.time, event.time)]


class _Silence(BaseDetector):
    """A toy timed detector: a click not followed by any event within 1 s."""

    name = "silence"
    handles = tuple(ev.EVENT_TYPES.values())

    def update(self, state, event):  # type: ignore[no-untyped-def]
        mem = self.memory(state)
        if type(event) is ev.Click:
            mem["click"] = event.time
        else:
            mem.pop("click", None)
        return ()

    def due(self, state):  # type: ignore[no-untyped-def]
        t = state.detector_state.get(self.name, {}).get("click")
        return None if t is None else t + 1.0

    def tick(self, state, now):  # type: ignore[no-untyped-def]
        t = self.memory(state).pop("click")
        return [self.signal(state, now, t)]


def test_timed_detector_ticks_by_next_event_or_by_advance() -> None:
    proc = SessionProcessor([_Silence()])
    click = ev.Click(id="c", time=10.0, session_id="s", x=1, y=1)
    state, out = proc.apply(None, [click])
    assert out == [] and proc.next_due(state) == 11.0
    assert proc.advance(state, 10.5) == []
    [sig] = proc.advance(state, 11.2)
    assert (sig.type, sig.start, sig.time) == ("silence", 10.0, 11.0)  # at its due time
    assert proc.next_due(state) is None
    # A late next event of the same session ticks the deadline first.
    state, out = proc.apply(state, [click, ev.PageView(id="p", time=15.0, session_id="s")])
    assert [s.time for s in out] == [11.0]
    # An event in time cancels it.
    state, out = proc.apply(state, [ev.Click(id="d", time=20.0, session_id="s", x=1, y=1),
                                    ev.PageView(id="q", time=20.5, session_id="s")])
    assert out == [] and proc.next_due(state) is None


def test_detectors_plug_in_and_their_memory_survives_encoding() -> None:
    proc = SessionProcessor([_CountClicks()])
    clicks = [ev.Click(id=str(i), time=float(i), session_id="s", x=1, y=1) for i in range(5)]
    state, signals = proc.apply(None, clicks[:2], origin=("i0", 0))
    assert signals == []
    state = decode_state(encode_state(state))  # what the table holds between batches
    state, signals = proc.apply(state, clicks[2:], origin=("i0", 1))
    assert [s.time for s in signals] == [2.0]
    assert state.detector_state == {"three_clicks": {"n": 5}}


def test_customer_state_counts_tickets_and_bounds_traits() -> None:
    many = {f"t{i}": i for i in range(200)}
    evs = [
        ev.Identify(id="i", time=1.0, session_id="s", customer_id="c", traits=many),
        ev.Ticket(id="t1", time=2.0, session_id="s", customer_id="c", action="created",
                  ticket_id="1", priority="urgent"),
        ev.Ticket(id="t2", time=3.0, session_id="s", customer_id="c", action="solved",
                  ticket_id="1", satisfaction="bad"),
    ]
    state = apply_customer(None, evs, origin=("i0", 1))
    assert (state.tickets_created, state.tickets_open, state.tickets_solved) == (1, 0, 1)
    assert state.high_priority_tickets == 1 and state.bad_satisfaction == 1
    assert len(state.traits) == 50
    again = apply_customer(decode_customer(encode_customer(state)), evs, origin=("i0", 1))
    assert again.tickets_created == 1  # replay skipped


def test_last_page_and_last_click_are_session_facts() -> None:
    state, _ = SessionProcessor().apply(None, [
        ev.PageView(id="1", time=1.0, session_id="s", url="https://x.test/cart"),
        ev.Click(id="2", time=2.0, session_id="s", x=1, y=1, target="button#pay"),
        ev.PageView(id="3", time=3.0, session_id="s", path="/checkout"),
    ])
    assert (state.page_at, state.page) == (3.0, "/checkout")
    assert (state.click_at, state.click_target) == (2.0, "button#pay")


class _Pending(BaseDetector):
    """Starts something on a click; follows page views only while it is pending."""

    name = "pending"
    handles = (ev.Click,)
    follows = (ev.PageView,)

    def __init__(self) -> None:
        self.seen: list[str] = []

    def update(self, state, event):  # type: ignore[no-untyped-def]
        self.seen.append(event.id)
        if type(event) is ev.Click:
            state.detector_state["pending"] = {"since": event.time}
        else:
            del state.detector_state["pending"]  # answered: nothing pending any more
        return ()


def test_followed_classes_reach_a_detector_only_while_it_has_memory() -> None:
    det = _Pending()
    views = [ev.PageView(id=f"v{i}", time=float(i), session_id="s") for i in range(3)]
    click = ev.Click(id="c", time=5.0, session_id="s", x=1, y=1)
    more = [ev.PageView(id=f"w{i}", time=6.0 + i, session_id="s") for i in range(3)]
    state, _ = SessionProcessor([det]).apply(None, [*views, click, *more])
    assert det.seen == ["c", "w0"]  # before the click and after the answer: not called
    assert "pending" not in state.detector_state


def test_items_without_a_cart_total_keep_a_running_cart_value() -> None:
    def cart(i: int, action: str, price: float | None, qty: int = 1,
             total: float | None = None) -> ev.CartUpdated:
        return ev.CartUpdated(id=str(i), time=float(i), session_id="s", action=action,  # type: ignore[arg-type]
                           price=price, quantity=qty, cart_value=total)

    proc = SessionProcessor()
    state, _ = proc.apply(None, [cart(1, "add", 20.0, 2), cart(2, "add", 5.0)])
    assert state.cart_value == 45.0
    state, _ = proc.apply(state, [cart(3, "remove", 20.0), cart(4, "view", 99.0)])
    assert state.cart_value == 25.0
    state, _ = proc.apply(state, [cart(5, "add", None, total=70.0), cart(6, "remove", 80.0)])
    assert state.cart_value == 0.0  # a total the source gives wins; never below nothing
