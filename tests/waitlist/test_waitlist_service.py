"""The waiting list service: joining, offers in queue order, lazy expiry, decline, admin actions."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Order, Seat, WaitlistEntry, utcnow
from app.services import booking, hold_extension, payments, seatmap, waitlist
from app.services.events import CategorySpec
from tests.invariants import assert_invariants


def seat_ids(event):
    return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)))


def statuses(ids):
    db.session.expire_all()
    return [db.session.get(Seat, seat_id).status for seat_id in ids]


def entry_row(entry):
    db.session.expire_all()
    return db.session.get(WaitlistEntry, entry.id)


@pytest.fixture
def sold_out(factory):
    """A published event of 1 row × 2 seats, held in full by buyer A."""
    event = factory.event(rows=1, columns=2)
    ids = seat_ids(event)
    holder = factory.user()
    order = booking.hold(holder, event, ids)
    return event, ids, holder, order


def test_join_needs_a_sold_out_event(factory):
    event = factory.event(rows=1, columns=2)
    with pytest.raises(waitlist.SeatsStillFree):
        waitlist.join(factory.user(), event, party_size=1)
    assert db.session.scalar(sa.select(sa.func.count(WaitlistEntry.id))) == 0


def test_join_when_sold_out_gives_a_place_in_line(sold_out, factory):
    event, _, _, _ = sold_out
    first = waitlist.join(factory.user(), event, party_size=2)
    second = waitlist.join(factory.user(), event, party_size="1", category="any", together=True)
    assert (waitlist.position(first), waitlist.position(second)) == (1, 2)
    assert second.party_size == 1 and second.together and second.price_category_id is None


@pytest.mark.parametrize("party", [0, 7, "two", "", None, True, 1.5, "-1"])
def test_bad_party_sizes_change_nothing(sold_out, factory, party):
    event = sold_out[0]
    with pytest.raises(waitlist.InvalidParty) as refused:
        waitlist.join(factory.user(), event, party_size=party)
    assert "1 to 6" in refused.value.message and refused.value.status == 400
    assert db.session.scalar(sa.select(sa.func.count(WaitlistEntry.id))) == 0


def test_joining_twice_or_an_unknown_category_is_refused(sold_out, factory):
    event = sold_out[0]
    buyer = factory.user()
    waitlist.join(buyer, event, party_size=1)
    with pytest.raises(waitlist.AlreadyWaiting):
        waitlist.join(buyer, event, party_size=2)
    with pytest.raises(waitlist.UnknownCategory):
        waitlist.join(factory.user(), event, party_size=1, category="99999")
    assert db.session.scalar(sa.select(sa.func.count(WaitlistEntry.id))) == 1


def test_an_expired_hold_is_offered_to_the_first_entry_by_the_cleanup(sold_out, factory):
    event, ids, _, order = sold_out
    waiting = factory.user()
    entry = waitlist.join(waiting, event, party_size=2)
    later = order.hold_expires_at + timedelta(seconds=1)
    booking.release_expired(now=later)
    entry = entry_row(entry)
    assert entry.status == "offered"
    offer = db.session.get(Order, entry.offer_order_id)
    assert offer.user_id == waiting.id and offer.status == "pending"
    assert offer.hold_expires_at == later + timedelta(minutes=30)
    assert [b.seat_id for b in offer.bookings] == ids and offer.total_amount == Decimal("50.00")
    assert statuses(ids) == ["reserved", "reserved"]
    assert_invariants()


def test_entries_the_seats_cannot_serve_keep_their_place(factory):
    event = factory.event(rows=1, columns=3)
    ids = seat_ids(event)
    orders = [booking.hold(factory.user(), event, [seat_id]) for seat_id in ids]
    pair = waitlist.join(factory.user(), event, party_size=2, together=True)
    single = waitlist.join(factory.user(), event, party_size=1)
    # Seats 1 and 3 free up: not side by side, so the pair waits and the single gets one.
    booking.release(orders[0], user=orders[0].user)
    booking.release(orders[2], user=orders[2].user)
    assert entry_row(single).status == "offered" and entry_row(pair).status == "waiting"
    assert waitlist.position(entry_row(pair)) == 1
    assert statuses(ids) == ["reserved", "reserved", "available"]
    # Seat 2 frees up too: now 2 and 3 sit together.
    booking.release(orders[1], user=orders[1].user)
    pair = entry_row(pair)
    assert pair.status == "offered"
    assert sorted(b.seat_id for b in pair.offer_order.bookings) == ids[1:]
    assert_invariants()


def test_a_category_entry_only_gets_seats_of_its_category(factory):
    event = factory.event(
        rows=2,
        columns=1,
        categories=[
            CategorySpec("Front", Decimal("40.00"), first_row=1, last_row=1),
            CategorySpec("Back", Decimal("20.00")),
        ],
    )
    ids = seat_ids(event)
    front, back = [booking.hold(factory.user(), event, [seat_id]) for seat_id in ids]
    front_category = event.price_categories[0].id
    wants_front = waitlist.join(factory.user(), event, party_size=1, category=str(front_category))
    booking.release(back, user=back.user)
    assert entry_row(wants_front).status == "waiting"
    assert statuses(ids) == ["reserved", "available"]
    booking.release(front, user=front.user)
    assert entry_row(wants_front).status == "offered"


def test_lazy_expiry_gives_the_list_the_seats_before_a_public_hold(sold_out, factory):
    event, ids, _, order = sold_out
    entry = waitlist.join(factory.user(), event, party_size=2)
    later = order.hold_expires_at + timedelta(seconds=1)
    assert seatmap.seat_states(event, later)["seats"][0][3] == "r"  # held for the list, not shown free
    with pytest.raises(booking.SeatUnavailable):
        booking.hold(factory.user(), event, ids, now=later)
    assert entry_row(entry).status == "offered"
    assert statuses(ids) == ["reserved", "reserved"]
    assert_invariants()


def test_without_a_fitting_entry_the_public_hold_takes_an_expired_seat(sold_out, factory):
    event, ids, _, order = sold_out
    entry = waitlist.join(factory.user(), event, party_size=2, together=True)
    later = order.hold_expires_at + timedelta(seconds=1)
    public = booking.hold(factory.user(), event, ids[:1], now=later)
    assert public.status == "pending"
    assert entry_row(entry).status == "waiting"
    assert_invariants()


def test_declining_passes_the_offer_on_and_the_last_decline_frees_the_seats(sold_out, factory):
    event, ids, holder, order = sold_out
    first_buyer, second_buyer = factory.user(), factory.user()
    first = waitlist.join(first_buyer, event, party_size=2)
    second = waitlist.join(second_buyer, event, party_size=2)
    booking.release(order, user=holder)
    first = entry_row(first)
    assert first.status == "offered" and entry_row(second).status == "waiting"
    waitlist.decline(first, user=first_buyer)
    assert entry_row(first).status == "declined"
    second = entry_row(second)
    assert second.status == "offered"
    with pytest.raises(waitlist.OfferNotOpen):
        waitlist.accept(entry_row(first), user=first_buyer)
    waitlist.decline(second, user=second_buyer)
    assert statuses(ids) == ["available", "available"]
    assert_invariants()


def test_an_offer_not_taken_moves_on_when_it_expires(sold_out, factory):
    event, ids, holder, order = sold_out
    first = waitlist.join(factory.user(), event, party_size=2)
    second = waitlist.join(factory.user(), event, party_size=2)
    booking.release(order, user=holder)
    first = entry_row(first)
    after_offer = first.offer_expires_at + timedelta(seconds=1)
    assert first.state_at(after_offer) == "expired"
    with pytest.raises(waitlist.OfferNotOpen):
        waitlist.accept(first, user=first.user, now=after_offer)
    waitlist.tidy_offers(now=after_offer)
    assert entry_row(first).status == "expired"
    assert entry_row(second).status == "offered"
    assert_invariants()


def test_accepting_goes_to_checkout_and_paying_sells_the_seats(sold_out, factory, sandbox_provider):
    event, ids, holder, order = sold_out
    buyer = factory.user()
    entry = waitlist.join(buyer, event, party_size=2)
    booking.release(order, user=holder)
    offer = waitlist.accept(entry_row(entry), user=buyer)
    assert entry_row(entry).status == "accepted"
    assert waitlist.accept(entry_row(entry), user=buyer).id == offer.id  # a double click: same checkout
    payments.pay_by_card(offer, user=buyer, card_number=payments.CARD_SUCCEEDS)
    assert statuses(ids) == ["booked", "booked"]
    assert_invariants()


def test_someone_elses_offer_is_not_found(sold_out, factory):
    event, _, holder, order = sold_out
    buyer = factory.user()
    entry = waitlist.join(buyer, event, party_size=2)
    booking.release(order, user=holder)
    stranger = factory.user()
    for action in (waitlist.accept, waitlist.decline, waitlist.leave):
        with pytest.raises(waitlist.EntryNotFound):
            action(entry_row(entry), user=stranger)
    assert entry_row(entry).status == "offered"


def test_a_refund_cancellation_offers_the_seats(sold_out, factory, sandbox_provider):
    event, ids, holder, order = sold_out
    payments.pay_by_card(order, user=holder, card_number=payments.CARD_SUCCEEDS)
    entry = waitlist.join(factory.user(), event, party_size=1)
    booking.cancel_booking(db.session.get(Order, order.id).bookings[0])
    assert entry_row(entry).status == "offered"
    assert statuses(ids) == ["reserved", "booked"]
    assert_invariants()


def test_cancelling_the_event_closes_the_list(sold_out, factory):
    event, ids, _, _ = sold_out
    entry = waitlist.join(factory.user(), event, party_size=1)
    booking.cancel_event(event)
    assert entry_row(entry).status == "closed"
    assert not waitlist.is_list_open(event.id)
    assert statuses(ids) == ["available", "available"]


def test_admin_skips_ends_offers_and_switches_the_list_off(sold_out, factory):
    event, ids, holder, order = sold_out
    skipped = waitlist.join(factory.user(), event, party_size=2)
    offered = waitlist.join(factory.user(), event, party_size=2)
    waitlist.skip(skipped)
    with pytest.raises(waitlist.EntryNotOpen):
        waitlist.skip(entry_row(skipped))
    booking.release(order, user=holder)
    assert entry_row(offered).status == "offered"
    waitlist.end_offer(entry_row(offered))
    assert entry_row(offered).status == "expired"
    assert statuses(ids) == ["available", "available"]
    waitlist.set_open(event, False)
    booking.hold(factory.user(), event, ids)
    with pytest.raises(waitlist.WaitlistClosed):
        waitlist.join(factory.user(), event, party_size=1)
    csv_text = waitlist.entries_csv(event)
    assert csv_text.splitlines()[0].startswith("position,entry,buyer")
    assert "skipped" in csv_text and "expired" in csv_text


def test_a_hold_is_extended_once_and_never_an_offer(sold_out, factory):
    event, ids, holder, order = sold_out
    before = db.session.get(
        Order, order.id, populate_existing=True
    ).hold_expires_at  # as stored (MariaDB: whole seconds)
    assert hold_extension.can_extend(order)
    extended = hold_extension.extend_hold(order, user=holder)
    assert extended.hold_expires_at == before + timedelta(seconds=120)
    assert db.session.get(Seat, ids[0]).reservation_expires_at == before + timedelta(seconds=120)
    with pytest.raises(hold_extension.ExtensionRefused):
        hold_extension.extend_hold(order, user=holder)
    with pytest.raises(booking.OrderNotFound):
        hold_extension.extend_hold(order, user=factory.user())
    buyer = factory.user()
    entry = waitlist.join(buyer, event, party_size=2)
    booking.release(order, user=holder)
    offer = entry_row(entry).offer_order
    assert not hold_extension.can_extend(offer)
    with pytest.raises(hold_extension.ExtensionRefused):
        hold_extension.extend_hold(offer, user=buyer)


def test_an_expired_hold_cannot_be_extended(sold_out):
    _, _, holder, order = sold_out
    with pytest.raises(hold_extension.ExtensionRefused):
        hold_extension.extend_hold(order, user=holder, now=utcnow() + timedelta(hours=1))


def test_the_offer_and_the_cancellation_are_emailed(sold_out, factory, smtp_server):
    from app.services import mail

    event, _, holder, order = sold_out
    buyer = factory.user()
    waitlist.join(buyer, event, party_size=2)
    booking.release(order, user=holder)
    now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # MariaDB keeps whole seconds
    assert mail.send_due_emails(now=now) == 1
    [(recipients, message)] = smtp_server.messages
    assert recipients == [buyer.email]
    assert message["Subject"] == f"Seats for {event.name} are waiting for you"
    body = message.get_body(("plain",)).get_content()
    assert "A1, A2" in body and "My bookings" in body
    other = factory.user()
    second = factory.event(rows=1, columns=1)
    booking.hold(factory.user(), second, seat_ids(second))
    waitlist.join(other, second, party_size=1)
    booking.cancel_event(second)
    assert mail.send_due_emails(now=now + timedelta(seconds=1)) == 1
    assert smtp_server.messages[-1][0] == [other.email]
    assert "waiting list is closed" in smtp_server.messages[-1][1].get_body(("plain",)).get_content()


def test_a_waiting_buyer_looking_is_enough_to_get_the_offer(sold_out, factory):
    event, _, _, order = sold_out
    entry = waitlist.join(factory.user(), event, party_size=2)
    later = order.hold_expires_at + timedelta(seconds=1)
    assert waitlist.settle_lapsed_holds([event.id], later) == 1
    assert entry_row(entry).status == "offered"
    assert waitlist.settle_lapsed_holds([event.id], later) == 0
