"""The booking and payment services, one buyer at a time (the concurrent cases are in test_concurrency)."""

import contextlib
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.models import Booking, Event, Order, Payment, Seat, utcnow
from app.services import booking, orders, payments, states
from app.services.errors import IllegalTransition
from app.services.events import CategorySpec
from tests.invariants import assert_invariants, hold_rows

ARABIC_INDIC_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")


def seat_ids(db_session, event, count=None):
    ids = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    return ids[:count] if count else ids


def seat_states(db_session, ids):
    db_session.expire_all()
    return [db_session.get(Seat, seat_id).status for seat_id in ids]


def test_hold_reserves_seats_and_creates_pending_order(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    assert order.status == "pending" and order.payment_status == "pending"
    assert order.total_amount == Decimal("50.00")
    assert [b.seat_id for b in order.bookings] == ids
    assert all(b.status == "pending" and b.total_amount == Decimal("25.00") for b in order.bookings)
    assert seat_states(db_session, ids) == ["reserved", "reserved"]
    seat = db_session.get(Seat, ids[0])
    ttl = (seat.reservation_expires_at - utcnow()).total_seconds()
    assert 290 < ttl <= 300


def test_hold_prices_follow_categories(db_session, factory):
    event = factory.event(
        rows=3,
        columns=2,
        categories=[
            CategorySpec("Premium", Decimal("80.00"), "#f00", 1, 1),
            CategorySpec("Standard", Decimal("40.00")),
        ],
    )
    ids = seat_ids(db_session, event)
    order = booking.hold(factory.user(), event, [ids[0], ids[-1]])
    assert sorted(b.total_amount for b in order.bookings) == [Decimal("40.00"), Decimal("80.00")]
    assert order.total_amount == Decimal("120.00")


def test_hold_is_all_or_nothing(db_session, factory):
    event = factory.event()
    ids = seat_ids(db_session, event, 3)
    booking.hold(factory.user(), event, [ids[1]])
    with pytest.raises(booking.SeatUnavailable) as refused:
        booking.hold(factory.user(), event, ids)
    assert refused.value.details["seats"] == ["A2"]
    assert refused.value.details["seat_ids"] == [ids[1]]
    assert seat_states(db_session, ids) == ["available", "reserved", "available"]
    assert db_session.scalar(sa.select(sa.func.count(Order.id))) == 1


def test_expired_hold_is_free_before_any_cleanup(db_session, factory):
    event = factory.event()
    ids = seat_ids(db_session, event, 1)
    first, second = factory.user(), factory.user()
    old = booking.hold(first, event, ids, now=utcnow() - timedelta(seconds=301))
    order = booking.hold(second, event, ids)
    assert order.user_id == second.id
    db_session.expire_all()
    statuses = {b.order_id: b.status for b in db_session.scalars(sa.select(Booking))}
    assert statuses == {old.id: "expired", order.id: "pending"}


def test_one_open_checkout_per_buyer_per_event(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    first = booking.hold(buyer, event, [ids[0]])
    with pytest.raises(booking.CheckoutAlreadyOpen) as refused:
        booking.hold(buyer, event, [ids[1]])
    assert refused.value.details["order_reference"] == first.reference
    other_event = factory.event()
    booking.hold(buyer, other_event, seat_ids(db_session, other_event, 1))


def test_own_expired_checkout_gives_way_to_a_new_one(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    old = booking.hold(buyer, event, [ids[0]], now=utcnow() - timedelta(minutes=6))
    new = booking.hold(buyer, event, [ids[1]])
    db_session.expire_all()
    assert db_session.get(Order, old.id).status == "expired"
    assert new.status == "pending"
    assert seat_states(db_session, ids) == ["available", "reserved"]


@pytest.mark.parametrize(
    "chosen, error",
    [
        (lambda ids: [], booking.NoSeatsChosen),
        (lambda ids: ids[:7], booking.TooManySeats),
        (lambda ids: [ids[0], ids[0]], booking.UnknownSeats),
        (lambda ids: [999999], booking.UnknownSeats),
        (lambda ids: ["abc"], booking.UnknownSeats),
        (lambda ids: [ids[0] + 0.5], booking.UnknownSeats),  # never rounded into a real seat
        (lambda ids: [True], booking.UnknownSeats),
        (lambda ids: [2**63], booking.UnknownSeats),
        (lambda ids: [-ids[0]], booking.UnknownSeats),
        (lambda ids: [None], booking.UnknownSeats),
        (lambda ids: [[ids[0]]], booking.UnknownSeats),
        (lambda ids: "12", booking.UnknownSeats),
        (lambda ids: (ids[0],), booking.UnknownSeats),
        (lambda ids: (seat_id for seat_id in ids[:1]), booking.UnknownSeats),
        # Strings count only as plain ASCII digits: int() would read these into real seats...
        (lambda ids: [f" {ids[0]} "], booking.UnknownSeats),
        (lambda ids: [f"{ids[0]}\n"], booking.UnknownSeats),
        (lambda ids: [f"+{ids[0]}"], booking.UnknownSeats),
        (lambda ids: [str(ids[0]).translate(ARABIC_INDIC_DIGITS)], booking.UnknownSeats),
        (lambda ids: [str(ids[0]).translate(FULLWIDTH_DIGITS)], booking.UnknownSeats),
        # ...and these pass str.isdigit() but make int() raise.
        (lambda ids: ["²"], booking.UnknownSeats),
        (lambda ids: ["①"], booking.UnknownSeats),
        (lambda ids: ["9" * 5000], booking.UnknownSeats),
        (lambda ids: ["99999999999"], booking.UnknownSeats),
        (lambda ids: ["0"], booking.UnknownSeats),
        # The length is checked before any element: a huge body is not converted id by id.
        (lambda ids: ["x"] * 7, booking.TooManySeats),
        (lambda ids: [ids[0]] * 2_000_000, booking.TooManySeats),
    ],
)
def test_bad_seat_choices_are_refused(db_session, factory, chosen, error):
    event = factory.event()
    with pytest.raises(error):
        booking.hold(factory.user(), event, chosen(seat_ids(db_session, event)))
    assert db_session.scalar(sa.select(sa.func.count(Order.id))) == 0


def test_seat_ids_may_be_ascii_digit_strings(db_session, factory):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(factory.user(), event, [str(ids[1]), ids[0]])
    assert sorted(b.seat_id for b in order.bookings) == ids


def test_seats_of_another_event_are_refused(db_session, factory):
    event, other = factory.event(), factory.event()
    with pytest.raises(booking.UnknownSeats):
        booking.hold(factory.user(), event, seat_ids(db_session, other, 1))


def test_holding_seats_you_already_hold_points_to_your_checkout(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 3)
    first = booking.hold(buyer, event, ids[:2])
    for again in (ids[:2], ids[1:3]):
        with pytest.raises(booking.CheckoutAlreadyOpen) as refused:
            booking.hold(buyer, event, again)
        assert refused.value.details["order_reference"] == first.reference


def test_a_held_seat_of_another_event_is_unknown_here(db_session, factory):
    event, other = factory.event(), factory.event()
    booking.hold(factory.user(), other, seat_ids(db_session, other, 1))
    with pytest.raises(booking.UnknownSeats):
        booking.hold(factory.user(), event, seat_ids(db_session, other, 1))


def _expired_checkout(event, ids, buyer):
    """The buyer's hold that ran out and was not cleaned up yet: the locked check closes it."""
    booking.hold(buyer, event, ids[-1:], now=utcnow() - timedelta(minutes=6))


def _taken_by_another_buyer(factory, event, other, ids, other_ids, buyer):
    booking.hold(factory.user(), event, ids[:1])
    return ids[:2]


def _unknown_seat(factory, event, other, ids, other_ids, buyer):
    return [ids[1], 999999]


def _free_seat_of_another_event(factory, event, other, ids, other_ids, buyer):
    return other_ids[:1]


def _held_seat_of_another_event(factory, event, other, ids, other_ids, buyer):
    booking.hold(factory.user(), other, other_ids[:1])
    return other_ids[:1]


def _own_seats_again(factory, event, other, ids, other_ids, buyer):
    booking.hold(buyer, event, ids[:2])
    return ids[:2]


def _own_seat_and_another(factory, event, other, ids, other_ids, buyer):
    booking.hold(buyer, event, ids[:2])
    return ids[1:3]


def _other_seats_with_a_checkout_open(factory, event, other, ids, other_ids, buyer):
    booking.hold(buyer, event, ids[:2])
    return ids[3:4]


def _sales_ended_with_seats_held(factory, event, other, ids, other_ids, buyer):
    booking.hold(factory.user(), event, ids[:1])
    _expired_checkout(event, ids, buyer)
    event.sales_ended_at = utcnow()
    booking.db.session.commit()
    return ids[:2]


def _too_many_seats(factory, event, other, ids, other_ids, buyer):
    return ids[1:8]


@pytest.mark.parametrize(
    "scenario, error",
    [
        (_taken_by_another_buyer, booking.SeatUnavailable),
        (_unknown_seat, booking.UnknownSeats),
        (_free_seat_of_another_event, booking.UnknownSeats),
        (_held_seat_of_another_event, booking.UnknownSeats),
        (_own_seats_again, booking.CheckoutAlreadyOpen),
        (_own_seat_and_another, booking.CheckoutAlreadyOpen),
        (_other_seats_with_a_checkout_open, booking.CheckoutAlreadyOpen),
        (_sales_ended_with_seats_held, booking.EventNotOnSale),
        (_too_many_seats, booking.TooManySeats),
    ],
)
@pytest.mark.parametrize("fast_path", ["with the fast path", "race lost after the fast path"])
def test_every_refusal_of_a_hold_changes_no_row(db_session, factory, monkeypatch, scenario, error, fast_path):
    """Also when the locked check refuses after it closed the buyer's expired checkout."""
    event, other = factory.event(), factory.event()
    ids, other_ids = seat_ids(db_session, event), seat_ids(db_session, other)
    buyer = factory.user()
    wanted = scenario(factory, event, other, ids, other_ids, buyer)
    if booking.pending_order_for(buyer, event) is None:
        _expired_checkout(event, ids, buyer)
    if fast_path != "with the fast path":
        monkeypatch.setattr(booking, "_refuse_early", lambda *args: None)
    before = hold_rows()
    with pytest.raises(error):
        booking.hold(buyer, event, wanted)
    assert hold_rows() == before


@pytest.mark.parametrize("status", ["draft", "cancelled"])
def test_only_published_events_sell(db_session, factory, status):
    event = factory.event(status=status)
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), event, seat_ids(db_session, event, 1))


def test_past_event_does_not_sell(db_session, factory):
    event = factory.event()
    with pytest.raises(booking.EventNotOnSale, match="ended"):
        booking.hold(factory.user(), event, seat_ids(db_session, event, 1), now=event.date + timedelta(minutes=1))


def test_release_frees_seats(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    booking.release(order, user=buyer)
    assert seat_states(db_session, ids) == ["available", "available"]
    assert {b.status for b in db_session.get(Order, order.id).bookings} == {"cancelled"}
    with pytest.raises(booking.OrderNotPending):
        booking.release(order, user=buyer)


def test_release_of_someone_elses_order_is_not_found(db_session, factory):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    with pytest.raises(booking.OrderNotFound):
        booking.release(order, user=factory.user())


def test_release_expired_closes_runout_holds_only(db_session, factory):
    event = factory.event()
    ids = seat_ids(db_session, event, 3)
    now = utcnow()
    stale = booking.hold(factory.user(), event, ids[:2], now=now - timedelta(minutes=10))
    fresh = booking.hold(factory.user(), event, ids[2:])
    assert booking.release_expired(now, batch_size=1) == 1
    db_session.expire_all()
    assert db_session.get(Order, stale.id).status == "expired"
    assert db_session.get(Order, fresh.id).status == "pending"
    assert seat_states(db_session, ids) == ["available", "available", "reserved"]
    assert booking.release_expired(now) == 0


def test_release_expired_after_a_seat_was_taken_over(db_session, factory):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    stale = booking.hold(factory.user(), event, ids, now=utcnow() - timedelta(minutes=10))
    taker = booking.hold(factory.user(), event, ids[:1])
    assert booking.release_expired() == 1
    db_session.expire_all()
    assert db_session.get(Order, stale.id).status == "expired"
    assert seat_states(db_session, ids) == ["reserved", "available"]
    assert db_session.get(Order, taker.id).status == "pending"


# --- payments --------------------------------------------------------------------------------


def charges(db_session, order):
    return db_session.scalars(sa.select(Payment).where(Payment.order_id == order.id, Payment.kind == "charge")).all()


def test_card_payment_confirms_and_books(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    paid = payments.pay_by_card(order, user=buyer, card_number="4242 4242 4242 4242")
    assert (paid.status, paid.payment_status, paid.payment_method, paid.card_last4) == (
        "confirmed",
        "paid",
        "card",
        "4242",
    )
    assert paid.provider_reference.startswith("ch_")
    assert {(b.status, b.payment_status, b.payment_method) for b in paid.bookings} == {("confirmed", "paid", "card")}
    assert seat_states(db_session, ids) == ["booked", "booked"]
    [charge] = charges(db_session, order)
    assert charge.amount == Decimal("50.00") and charge.result == "succeeded"


def test_card_number_is_never_stored(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    payments.pay_by_card(order, user=buyer, card_number="4242424242424242")
    for table in (Order.__table__, Payment.__table__, Booking.__table__):
        for row in db_session.execute(sa.select(table)):
            assert "4242424242424242" not in repr(tuple(row))


def test_double_submit_charges_once(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    payments.pay_by_card(order, user=buyer, card_number="4242424242424242")
    again = payments.pay_by_card(order, user=buyer, card_number="4242424242424242")
    assert again.status == "confirmed"
    assert len(charges(db_session, order)) == 1


@pytest.mark.parametrize(
    "card, error, reason",
    [
        (payments.CARD_DECLINED, payments.PaymentDeclined, "declined"),
        (payments.CARD_PROVIDER_ERROR, payments.PaymentProviderError, "internal error"),
        ("4111111111111111", payments.PaymentDeclined, "unknown test card"),
    ],
)
def test_failed_card_fails_the_order_and_frees_seats(db_session, factory, card, error, reason):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    with pytest.raises(error, match=reason):
        payments.pay_by_card(order, user=buyer, card_number=card)
    db_session.expire_all()
    failed = db_session.get(Order, order.id)
    assert (failed.status, failed.payment_status) == ("failed", "failed")
    assert reason in failed.failure_reason
    assert {(b.status, b.payment_status) for b in failed.bookings} == {("failed", "failed")}
    assert seat_states(db_session, ids) == ["available", "available"]
    booking.hold(factory.user(), event, ids)  # someone else can have them now


@pytest.mark.parametrize(
    "card",
    [
        "1234",
        "4242424242424241",
        "abcd efgh ijkl mnop",
        "",
        "²" * 16,
        "4242424242424242".translate(FULLWIDTH_DIGITS),
        "4242424242424242".translate(ARABIC_INDIC_DIGITS),
    ],
)
def test_invalid_card_numbers_change_nothing(db_session, factory, card):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    with pytest.raises(payments.InvalidCard):
        payments.pay_by_card(order, user=buyer, card_number=card)
    db_session.expire_all()
    assert db_session.get(Order, order.id).status == "pending"
    assert charges(db_session, order) == []


def test_paying_after_the_hold_expired_charges_nothing(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 1)
    order = booking.hold(buyer, event, ids, now=utcnow() - timedelta(minutes=6))
    with pytest.raises(booking.HoldExpired):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    db_session.expire_all()
    assert db_session.get(Order, order.id).status == "expired"
    assert charges(db_session, order) == []
    assert seat_states(db_session, ids) == ["available"]


def test_paying_someone_elses_order_is_not_found(db_session, factory):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    with pytest.raises(booking.OrderNotFound):
        payments.pay_by_card(order, user=factory.user(), card_number=payments.CARD_SUCCEEDS)
    assert charges(db_session, order) == []


def test_wallet_redirect_and_confirm(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 1)
    order = booking.hold(buyer, event, ids)
    payment = payments.start_wallet(order, user=buyer)
    assert payment.result == "pending" and payment.method == "wallet"
    assert payments.start_wallet(order, user=buyer).id == payment.id
    paid = payments.confirm_wallet(order, user=buyer, approve=True)
    assert (paid.status, paid.payment_status, paid.payment_method) == ("confirmed", "paid", "wallet")
    assert payments.confirm_wallet(order, user=buyer, approve=True).status == "confirmed"
    assert len(charges(db_session, order)) == 1
    assert seat_states(db_session, ids) == ["booked"]


def test_wallet_decline_frees_seats(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 1)
    order = booking.hold(buyer, event, ids)
    payments.start_wallet(order, user=buyer)
    with pytest.raises(payments.PaymentDeclined):
        payments.confirm_wallet(order, user=buyer, approve=False)
    assert seat_states(db_session, ids) == ["available"]


def test_wallet_left_unconfirmed_fails_on_cleanup_with_a_reason(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 1)
    order = booking.hold(buyer, event, ids, now=utcnow() - timedelta(minutes=10))
    payments.start_wallet(order, user=buyer, now=utcnow() - timedelta(minutes=9))
    assert booking.release_expired() == 1
    db_session.expire_all()
    failed = db_session.get(Order, order.id)
    assert (failed.status, failed.payment_status) == ("failed", "failed")
    assert failed.failure_reason == booking.PAYMENT_NEVER_COMPLETED
    [attempt] = charges(db_session, order)
    assert attempt.result == "error" and attempt.failure_reason == booking.PAYMENT_NEVER_COMPLETED


def test_card_after_an_unfinished_wallet_attempt(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    payments.start_wallet(order, user=buyer)
    paid = payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.payment_method == "card"
    [charge] = charges(db_session, order)
    assert charge.method == "card"


def test_paying_the_rest_of_an_order_after_an_admin_cancelled_one_held_seat(db_session, factory, sandbox_provider):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    booking.cancel_booking(order.bookings[0])
    paid = payments.pay_by_card(db_session.get(Order, order.id), user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert (paid.status, paid.payment_status, paid.total_amount) == ("confirmed", "paid", Decimal("25.00"))
    assert [b.status for b in paid.bookings] == ["cancelled", "confirmed"]
    assert seat_states(db_session, ids) == ["available", "booked"]
    [charge] = charges(db_session, order)
    assert charge.amount == Decimal("25.00")
    assert [answer.amount for answer in sandbox_provider.charges] == [Decimal("25.00")]
    assert_invariants()


def test_a_wallet_payment_begun_before_a_seat_was_cancelled_charges_the_new_total(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 2))
    assert payments.start_wallet(order, user=buyer).amount == Decimal("50.00")
    booking.cancel_booking(order.bookings[1])
    paid = payments.confirm_wallet(db_session.get(Order, order.id), user=buyer, approve=True)
    assert (paid.status, paid.total_amount) == ("confirmed", Decimal("25.00"))
    [charge] = charges(db_session, order)
    assert (charge.result, charge.amount) == ("succeeded", Decimal("25.00"))
    assert_invariants()


def test_paying_with_a_clock_from_before_the_hold_was_taken_over_charges_nothing(
    db_session, factory, sandbox_provider, app
):
    """A held at t0; B took the seat over at t0+TTL+1; A's payment still judges by a moment before
    its hold ran out (as one that waited for the seat locks would): refused before the provider is asked."""
    event = factory.event()
    ids = seat_ids(db_session, event, 1)
    ttl = timedelta(seconds=app.config["HOLD_TTL_SECONDS"])
    t0 = utcnow() - ttl - timedelta(seconds=5)
    first, second = factory.user(), factory.user()
    order = booking.hold(first, event, ids, now=t0)
    taken_over = booking.hold(second, event, ids, now=t0 + ttl + timedelta(seconds=1))
    with pytest.raises(booking.HoldExpired):
        payments.pay_by_card(order, user=first, card_number=payments.CARD_SUCCEEDS, now=t0 + ttl - timedelta(seconds=1))
    assert list(sandbox_provider.charges) == [] and charges(db_session, order) == []
    db_session.expire_all()
    assert db_session.get(Order, order.id).status == "expired"
    assert db_session.get(Order, taken_over.id).status == "pending"
    assert seat_states(db_session, ids) == ["reserved"]
    assert_invariants()


def test_a_unit_of_work_run_again_charges_once(db_session, factory, sandbox_provider, monkeypatch):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 2))
    original, calls, keys = orders.move_seats, [], []
    original_charge = sandbox_provider.charge

    def seats_moved_under_us_once(*args, **kwargs):
        calls.append(args)
        return 0 if len(calls) == 1 else original(*args, **kwargs)

    def recording_charge(card_number, amount, *, idempotency_key):
        keys.append(idempotency_key)
        return original_charge(card_number, amount, idempotency_key=idempotency_key)

    monkeypatch.setattr(orders, "move_seats", seats_moved_under_us_once)
    monkeypatch.setattr(sandbox_provider, "charge", recording_charge)
    paid = payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert paid.status == "confirmed" and len(calls) == 2  # applying the answer ran twice...
    assert keys == [f"{order.reference}-charge-1"]  # ...but the provider was asked once, outside it
    [moved] = sandbox_provider.charges  # and charged once
    [charge] = charges(db_session, order)
    assert charge.provider_reference == moved.reference == paid.provider_reference
    assert_invariants()


def test_a_card_after_an_unfinished_wallet_payment_is_the_next_attempt(db_session, factory, sandbox_provider):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    assert payments.start_wallet(order, user=buyer).attempt == 1
    payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    [charge] = charges(db_session, order)
    assert (charge.method, charge.attempt) == ("card", 2)


@pytest.mark.parametrize(
    "close", ["released", "order_cancelled", "last_seat_cancelled", "event_cancelled", "replaced_by_a_new_hold"]
)
def test_a_waiting_wallet_payment_ends_with_its_order(db_session, factory, close):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    started = utcnow() - timedelta(minutes=10) if close == "replaced_by_a_new_hold" else None
    order = booking.hold(buyer, event, ids[:1], now=started)
    payments.start_wallet(order, user=buyer, now=started)
    if close == "released":
        booking.release(order, user=buyer)
    elif close == "order_cancelled":
        booking.cancel_order(order)
    elif close == "last_seat_cancelled":
        booking.cancel_booking(order.bookings[0])
    elif close == "event_cancelled":
        booking.cancel_event(event)
    else:
        booking.hold(buyer, event, ids[1:])
    db_session.expire_all()
    closed = db_session.get(Order, order.id)
    [attempt] = charges(db_session, order)
    assert attempt.result == "error" and attempt.completed_at is not None
    assert attempt.failure_reason == (closed.failure_reason or booking.PAYMENT_NEVER_COMPLETED)
    expected = (
        ("failed", booking.PAYMENT_NEVER_COMPLETED)
        if close == "replaced_by_a_new_hold"
        else ("cancelled", attempt.failure_reason)
    )
    assert (closed.status, closed.failure_reason) == expected
    assert_invariants()


def test_a_card_payment_the_provider_has_not_answered_blocks_the_wallet(db_session, factory, monkeypatch):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    with pytest.raises(payments.CardPaymentUnsettled):
        payments.start_wallet(order, user=buyer)
    [attempt] = charges(db_session, order)
    assert (attempt.method, attempt.result) == ("card", "error")


def test_one_seat_of_an_order_whose_card_payment_is_unanswered_cannot_be_cancelled(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = booking.hold(buyer, event, ids)
    with pytest.raises(payments.PaymentNotAnswered):
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_PROVIDER_TIMEOUT)
    with pytest.raises(booking.PaymentUnsettled, match="Cancel the whole order"):
        booking.cancel_booking(db_session.get(Order, order.id).bookings[0])
    db_session.expire_all()
    assert [b.status for b in db_session.get(Order, order.id).bookings] == ["pending", "pending"]
    booking.cancel_order(db_session.get(Order, order.id))
    assert seat_states(db_session, ids) == ["available", "available"]


@pytest.mark.parametrize(
    "paid, summary",
    [
        ("card", "Paid by card ending 4242."),
        ("wallet", "Paid with the StagePass Wallet."),
        ("waiting_wallet", "Awaiting your approval in the StagePass Wallet."),
        ("declined", "Payment declined: The card was declined: insufficient funds."),
        ("provider_error", "Payment failed: The card provider had an internal error."),
        ("unanswered", "The payment provider did not answer. Pay again: you will be charged at most once."),
        ("nothing", "Not paid yet."),
        ("released", "Nothing was charged."),
    ],
)
def test_payment_summary_says_what_happened(db_session, factory, paid, summary):
    event = factory.event()
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1))
    card = {
        "card": payments.CARD_SUCCEEDS,
        "declined": payments.CARD_DECLINED,
        "provider_error": payments.CARD_PROVIDER_ERROR,
        "unanswered": payments.CARD_PROVIDER_TIMEOUT,
    }.get(paid)
    if card:
        with contextlib.suppress(payments.DomainError):
            payments.pay_by_card(order, user=buyer, card_number=card)
    elif paid in ("wallet", "waiting_wallet"):
        payments.start_wallet(order, user=buyer)
        if paid == "wallet":
            payments.confirm_wallet(order, user=buyer, approve=True)
    elif paid == "released":
        booking.release(order, user=buyer)
    db_session.expire_all()
    assert payments.payment_summary(db_session.get(Order, order.id)) == summary


# --- cancellations and refunds ---------------------------------------------------------------


def paid_order(db_session, factory, event, count=2):
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event)[-count:] if count else [])
    return payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)


def test_cancel_paid_order_refunds_in_full(db_session, factory):
    event = factory.event()
    order = paid_order(db_session, factory, event)
    booking.cancel_order(order)
    db_session.expire_all()
    order = db_session.get(Order, order.id)
    assert (order.status, order.payment_status, order.refunded_amount) == ("cancelled", "refunded", Decimal("50.00"))
    assert {(b.status, b.payment_status) for b in order.bookings} == {("cancelled", "refunded")}
    assert seat_states(db_session, [b.seat_id for b in order.bookings]) == ["available", "available"]


def test_cancel_one_booking_refunds_that_seat(db_session, factory):
    event = factory.event()
    order = paid_order(db_session, factory, event)
    first, second = order.bookings
    booking.cancel_booking(first)
    db_session.expire_all()
    order = db_session.get(Order, order.id)
    assert (order.status, order.payment_status, order.refunded_amount) == ("confirmed", "paid", Decimal("25.00"))
    assert db_session.get(Booking, first.id).payment_status == "refunded"
    assert seat_states(db_session, [first.seat_id, second.seat_id]) == ["available", "booked"]
    booking.cancel_booking(db_session.get(Booking, second.id))
    db_session.expire_all()
    order = db_session.get(Order, order.id)
    assert (order.status, order.payment_status, order.refunded_amount) == ("cancelled", "refunded", Decimal("50.00"))
    refunds = db_session.scalars(sa.select(Payment.amount).where(Payment.kind == "refund")).all()
    assert sorted(refunds) == [Decimal("25.00"), Decimal("25.00")]


def test_cancel_event_refunds_everyone_and_stops_sales(db_session, factory):
    event = factory.event(rows=2, columns=3)
    paid = paid_order(db_session, factory, event, count=2)
    held = booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    summary = booking.cancel_event(event)
    assert (summary.orders, summary.refunded, summary.amount_refunded) == (2, 1, Decimal("50.00"))
    db_session.expire_all()
    assert db_session.get(Event, event.id).status == "cancelled"
    assert db_session.get(Order, paid.id).payment_status == "refunded"
    assert db_session.get(Order, held.id).status == "cancelled"
    assert set(seat_states(db_session, seat_ids(db_session, event))) == {"available"}
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), event, seat_ids(db_session, event, 1))


@pytest.mark.parametrize("cancel", ["order", "one_seat", "event"])
def test_a_refund_the_provider_refuses_changes_nothing(db_session, factory, sandbox_provider, cancel):
    event = factory.event()
    buyer = factory.user()
    ids = seat_ids(db_session, event, 2)
    order = payments.pay_by_card(booking.hold(buyer, event, ids), user=buyer, card_number=payments.CARD_REFUND_FAILS)
    with pytest.raises(
        payments.RefundFailed, match=f"refused to refund order {order.reference}: The card's bank refused"
    ):
        if cancel == "order":
            booking.cancel_order(order)
        elif cancel == "one_seat":
            booking.cancel_booking(order.bookings[0])
        else:
            booking.cancel_event(event)
    db_session.expire_all()
    kept = db_session.get(Order, order.id)
    assert (kept.status, kept.payment_status, kept.refunded_amount) == ("confirmed", "paid", Decimal("0.00"))
    assert {(b.status, b.payment_status) for b in kept.bookings} == {("confirmed", "paid")}
    assert db_session.get(Event, event.id).status == "published"
    assert seat_states(db_session, ids) == ["booked", "booked"]
    assert list(sandbox_provider.refunds) == []
    assert db_session.scalar(sa.select(sa.func.count(Payment.id)).where(Payment.kind == "refund")) == 0
    assert_invariants()


def test_a_refund_the_provider_does_not_answer_changes_nothing(db_session, factory, sandbox_provider, monkeypatch):
    event = factory.event()
    order = paid_order(db_session, factory, event)

    def silent(*args, **kwargs):
        raise TimeoutError("no answer")

    monkeypatch.setattr(sandbox_provider, "refund", silent)
    with pytest.raises(payments.RefundFailed, match="did not answer"):
        booking.cancel_order(order)
    db_session.expire_all()
    assert db_session.get(Order, order.id).status == "confirmed"
    assert_invariants()


def test_money_in_equals_money_out_plus_refunds(db_session, factory):
    event = factory.event(rows=2, columns=4)
    kept = paid_order(db_session, factory, event, count=2)
    buyer = factory.user()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 3))
    order = payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
    booking.cancel_booking(order.bookings[0])
    charged = db_session.scalar(
        sa.select(sa.func.sum(Payment.amount)).where(Payment.kind == "charge", Payment.result == "succeeded")
    )
    refunds = db_session.scalar(sa.select(sa.func.sum(Payment.amount)).where(Payment.kind == "refund"))
    confirmed = db_session.scalar(sa.select(sa.func.sum(Booking.total_amount)).where(Booking.status == "confirmed"))
    assert charged - refunds == confirmed == Decimal("100.00")
    assert kept.status == "confirmed"


# --- state machines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "table, current, new",
    [
        (states.SEAT_TRANSITIONS, "available", "booked"),
        (states.ORDER_TRANSITIONS, "expired", "confirmed"),
        (states.ORDER_TRANSITIONS, "confirmed", "pending"),
        (states.PAYMENT_TRANSITIONS, "failed", "paid"),
        (states.PAYMENT_TRANSITIONS, "pending", "refunded"),
    ],
)
def test_illegal_transitions_raise(table, current, new):
    with pytest.raises(IllegalTransition):
        states.check(table, current, new, "thing")


def test_illegal_order_change_never_half_applies(db_session, factory):
    event = factory.event()
    order = paid_order(db_session, factory, event)
    with pytest.raises(IllegalTransition):
        states.move_order(order, status="pending")
    assert order.status == "confirmed" and {b.status for b in order.bookings} == {"confirmed"}
    with pytest.raises(IllegalTransition):
        payments.refund(booking.hold(factory.user(), event, seat_ids(db_session, event, 1)), now=utcnow())
