"""The database itself holds the invariants: one live booking per seat, one live seat per position,
one charge per order and one refund per seat or per rest of an order."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.models import Booking, Event, Order, Payment, Seat, row_label, utcnow


def make_order(db_session, user, event, status="pending"):
    order = Order(user_id=user.id, event_id=event.id, status=status, hold_expires_at=utcnow() + timedelta(minutes=5))
    db_session.add(order)
    db_session.flush()
    return order


def first_seat(db_session, event):
    return db_session.scalars(sa.select(Seat).where(Seat.event_id == event.id).order_by(Seat.id)).first()


def test_second_live_booking_for_a_seat_is_rejected_by_the_database(db_session, factory):
    event = factory.event()
    seat = first_seat(db_session, event)
    buyer, rival = factory.user(), factory.user()
    first = make_order(db_session, buyer, event)
    db_session.add(
        Booking(order_id=first.id, user_id=buyer.id, event_id=event.id, seat_id=seat.id, total_amount=Decimal("25.00"))
    )
    db_session.commit()

    second = make_order(db_session, rival, event)
    db_session.add(
        Booking(
            order_id=second.id,
            user_id=rival.id,
            event_id=event.id,
            seat_id=seat.id,
            total_amount=Decimal("25.00"),
            status="confirmed",
        )
    )
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()


@pytest.mark.parametrize("dead_status", ["cancelled", "failed", "expired"])
def test_dead_bookings_do_not_block_a_new_one(db_session, factory, dead_status):
    event = factory.event()
    seat = first_seat(db_session, event)
    buyer = factory.user()
    old = make_order(db_session, buyer, event, status=dead_status)
    db_session.add(
        Booking(
            order_id=old.id,
            user_id=buyer.id,
            event_id=event.id,
            seat_id=seat.id,
            total_amount=Decimal("25.00"),
            status=dead_status,
        )
    )
    new = make_order(db_session, buyer, event)
    db_session.add(
        Booking(order_id=new.id, user_id=buyer.id, event_id=event.id, seat_id=seat.id, total_amount=Decimal("25.00"))
    )
    db_session.commit()
    assert db_session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.seat_id == seat.id)) == 2


def test_soft_deleted_booking_frees_the_unique_key(db_session, factory):
    event = factory.event()
    seat = first_seat(db_session, event)
    buyer = factory.user()
    old_order = make_order(db_session, buyer, event, status="cancelled")
    old = Booking(
        order_id=old_order.id, user_id=buyer.id, event_id=event.id, seat_id=seat.id, total_amount=Decimal("25.00")
    )
    db_session.add(old)
    db_session.commit()
    old.soft_delete()
    db_session.commit()
    new_order = make_order(db_session, factory.user(), event)
    db_session.add(
        Booking(
            order_id=new_order.id,
            user_id=new_order.user_id,
            event_id=event.id,
            seat_id=seat.id,
            total_amount=Decimal("25.00"),
        )
    )
    db_session.commit()


def test_one_pending_order_per_buyer_per_event(db_session, factory):
    event = factory.event()
    buyer = factory.user()
    make_order(db_session, buyer, event)
    db_session.commit()
    make_order(db_session, factory.user(), event)  # another buyer may
    db_session.commit()
    with pytest.raises(IntegrityError):
        make_order(db_session, buyer, event)
    db_session.rollback()
    make_order(db_session, buyer, event, status="confirmed")  # a finished checkout does not block
    db_session.commit()


def test_two_live_seats_in_one_position_are_rejected(db_session, factory):
    event = factory.event(rows=1, columns=1)
    seat = first_seat(db_session, event)
    db_session.add(Seat(event_id=event.id, row=seat.row, column=seat.column, price_category_id=seat.price_category_id))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    seat.soft_delete()
    db_session.commit()
    db_session.add(Seat(event_id=event.id, row=seat.row, column=seat.column, price_category_id=seat.price_category_id))
    db_session.commit()


def test_soft_deleted_rows_are_hidden_from_normal_queries(db_session, factory):
    kept, gone = factory.event(name="Kept"), factory.event(name="Gone")
    gone.soft_delete()
    seat = first_seat(db_session, kept)
    seat.soft_delete()
    db_session.commit()
    seat_id, kept_id = seat.id, kept.id
    db_session.expunge_all()

    names = db_session.scalars(sa.select(Event.name)).all()
    assert names == ["Kept"]
    assert db_session.get(Seat, seat_id) is None
    assert seat_id not in db_session.scalars(sa.select(Seat.id)).all()
    assert db_session.scalar(sa.select(sa.func.count(Seat.id)).where(Seat.event_id == kept_id)) == 11
    everything = db_session.scalars(sa.select(Event.name).execution_options(include_deleted=True)).all()
    assert sorted(everything) == ["Gone", "Kept"]


def test_money_is_exact_decimal(db_session, factory):
    event = factory.event()
    seat = first_seat(db_session, event)
    buyer = factory.user()
    order = make_order(db_session, buyer, event)
    order.total_amount = Decimal("0.10") + Decimal("0.20")
    db_session.add(
        Booking(order_id=order.id, user_id=buyer.id, event_id=event.id, seat_id=seat.id, total_amount=Decimal("19.99"))
    )
    db_session.commit()
    db_session.expire_all()
    assert db_session.get(Order, order.id).total_amount == Decimal("0.30")
    assert isinstance(db_session.scalars(sa.select(Booking)).one().total_amount, Decimal)


@pytest.mark.parametrize("number, label", [(1, "A"), (3, "C"), (26, "Z"), (27, "AA"), (52, "AZ")])
def test_row_labels(number, label):
    assert row_label(number) == label


def test_a_seat_or_the_rest_of_an_order_is_refunded_at_most_once(db_session, factory):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    order = make_order(db_session, buyer, event)
    seat = first_seat(db_session, event)
    seat_booking = Booking(
        order_id=order.id, user_id=buyer.id, event_id=event.id, seat_id=seat.id, total_amount=Decimal("25.00")
    )
    db_session.add(seat_booking)
    db_session.commit()

    def refund(booking_id, reference):
        db_session.add(
            Payment(
                order_id=order.id,
                booking_id=booking_id,
                kind="refund",
                method="card",
                amount=Decimal("25.00"),
                result="succeeded",
                provider_reference=reference,
            )
        )
        db_session.commit()

    refund(seat_booking.id, "re_seat")
    refund(None, "re_rest")  # the rest of the order is refunded once, besides the seat
    for booking_id in (seat_booking.id, None):
        with pytest.raises(IntegrityError):
            refund(booking_id, f"re_again_{booking_id}")
        db_session.rollback()
    db_session.add(
        Payment(
            order_id=order.id,
            kind="charge",
            method="card",
            amount=Decimal("50.00"),
            result="succeeded",
            provider_reference="ch_one",
        )
    )
    db_session.commit()  # the charge is not a refund: the refund keys leave it alone
