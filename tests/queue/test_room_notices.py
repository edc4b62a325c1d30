"""What the room tells its buyers when nothing is left to sell, and what becomes of it when the
on-sale moves: a postponed on-sale starts a new room and the admissions of the old one stop working."""

from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, Event, Seat, SeatStatus, WaitingRoomMode, utcnow
from app.services import events, waiting_room, waitlist
from app.services.catalog import SaleState, sale_state
from tests.admin_support import event_form
from tests.support import csrf_token, log_in


def buyer(user_id):
    return SimpleNamespace(id=user_id, is_authenticated=True)


@pytest.fixture
def always_room(factory, redis_client):
    """A published event of 10 seats on sale now, always behind its waiting room."""
    event = factory.event(rows=2, columns=5)
    event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.forget(event.id)
    return event


def set_seats(event, status, count=None, expires_at=None):
    """Give the event's first `count` seats (all by default) this status."""
    ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    db.session.execute(
        sa.update(Seat).where(Seat.id.in_(ids[:count])).values(status=status, reservation_expires_at=expires_at)
    )
    db.session.commit()


# --- nothing left to sell ------------------------------------------------------------------------


def test_what_is_left_to_sell(always_room):
    now = utcnow()
    assert sale_state(always_room, now) == SaleState.AVAILABLE
    set_seats(always_room, SeatStatus.RESERVED, expires_at=now + timedelta(minutes=5))
    set_seats(always_room, SeatStatus.BOOKED, 9)  # and the last one held
    assert sale_state(always_room, now) == SaleState.TAKEN_FOR_NOW
    assert sale_state(always_room, now + timedelta(minutes=6)) == SaleState.AVAILABLE  # the hold ran out
    set_seats(always_room, SeatStatus.BOOKED)
    assert sale_state(always_room, now) == SaleState.SOLD_OUT


def test_a_sold_out_room_tells_its_queue_admits_nobody_and_offers_the_waiting_list(always_room, app):
    set_seats(always_room, SeatStatus.BOOKED)
    place = waiting_room.join(buyer(1), always_room, ip="10.0.0.1")
    assert (place.state, place.position, place.seats_may_return, place.waitlist_open) == ("sold_out", 1, False, True)
    status = place.to_json(utcnow())
    assert status["state"] == "sold_out" and status["poll_after_ms"] == waiting_room.POLL_BEYOND_SEATS_MS
    waiting_room.advance(always_room, force=True)
    assert waiting_room.place_of(1, always_room).state == "sold_out"
    assert waiting_room.stats(always_room).admitted == 0


def test_a_closed_waiting_list_is_not_offered(always_room, app):
    set_seats(always_room, SeatStatus.BOOKED)
    waitlist.set_open(always_room, False)
    assert waiting_room.join(buyer(1), always_room, ip="10.0.0.1").waitlist_open is False


def test_held_seats_are_taken_for_now_and_the_queue_moves_on_when_a_hold_runs_out(always_room, app):
    now = utcnow()
    set_seats(always_room, SeatStatus.RESERVED, expires_at=now + timedelta(minutes=5))
    place = waiting_room.join(buyer(1), always_room, ip="10.0.0.1", now=now)
    assert (place.state, place.seats_may_return) == ("sold_out", True)

    later = now + timedelta(minutes=6)
    assert waiting_room.advance(always_room, now=later, force=True) == [1]
    assert waiting_room.place_of(1, always_room, later).state == "admitted"


def test_only_queued_buyers_are_told(always_room, app):
    """An admitted buyer keeps the admission; the notice is for those still waiting."""
    waiting_room.join(buyer(1), always_room, ip="10.0.0.1")
    waiting_room.admit(always_room, 1)
    set_seats(always_room, SeatStatus.BOOKED)
    waiting_room.advance(always_room, force=True)
    waiting_room.join(buyer(2), always_room, ip="10.0.0.1")
    assert waiting_room.place_of(1, always_room).state == "admitted"
    assert waiting_room.place_of(2, always_room).state == "sold_out"


def test_a_sold_out_room_shows_the_notice_and_lets_buyers_see_the_waiting_list(client, factory, always_room):
    set_seats(always_room, SeatStatus.BOOKED)
    log_in(client, factory.user())
    room = client.get(f"/events/{always_room.id}/waiting-room").get_data(as_text=True)
    assert "Sold out" in room and f'href="/events/{always_room.id}#waitlist-join"' in room
    status = client.get(f"/api/events/{always_room.id}/waiting-room").get_json()
    assert (status["state"], status["seats_may_return"], status["waitlist_open"]) == ("sold_out", False, True)
    page = client.get(f"/events/{always_room.id}")
    assert page.status_code == 200 and 'id="waitlist-join"' in page.get_data(as_text=True)
    headers = {"Accept": "application/json", "X-CSRFToken": csrf_token(client, "/")}
    seat_id = db.session.scalar(sa.select(sa.func.min(Seat.id)).where(Seat.event_id == always_room.id))
    refused = client.post(f"/api/events/{always_room.id}/holds", json={"seat_ids": [seat_id]}, headers=headers)
    assert refused.get_json()["code"] == "queue_required"  # seats that come back still go in queue order


# --- a moved on-sale -----------------------------------------------------------------------------


def details_of(event, **changes):
    fields = {
        "name": event.name,
        "date": event.date,
        "rows": event.rows,
        "columns": event.columns,
        "categories": [events.CategorySpec("Standard", Decimal("25.00"))],
        "venue": event.venue,
        "sales_start_at": event.sales_start_at,
        "waiting_room": event.waiting_room,
    }
    return events.EventDetails(**(fields | changes))


NOW = utcnow().replace(microsecond=0)


@pytest.mark.parametrize(
    ("before", "after", "restarts"),
    [
        (NOW - timedelta(minutes=5), NOW + timedelta(hours=1), True),  # postponed after it opened
        (NOW + timedelta(minutes=5), NOW + timedelta(hours=1), True),  # postponed before it opened
        (None, NOW + timedelta(hours=1), True),  # selling already, now given an on-sale
        (NOW + timedelta(hours=1), NOW + timedelta(minutes=5), False),  # brought forward: the early crowd stays
        (NOW + timedelta(hours=1), NOW - timedelta(minutes=1), False),  # opened now: the crowd is drawn at once
        (NOW + timedelta(hours=1), None, False),
        (NOW + timedelta(hours=1), NOW + timedelta(hours=1), False),
    ],
)
def test_which_moves_of_the_on_sale_start_a_new_room(before, after, restarts):
    assert waiting_room.on_sale_move_restarts_room(before, after, NOW) is restarts


def test_postponing_the_on_sale_resets_the_room_and_refuses_old_admissions(factory, redis_client, app):
    event = factory.event(rows=2, columns=5)
    event.sales_start_at = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    event.waiting_room = WaitingRoomMode.ON_SALE
    db.session.commit()
    now = utcnow()
    waiting_room.join(buyer(1), event, ip="10.0.0.1", now=now)
    waiting_room.join(buyer(2), event, ip="10.0.0.1", now=now)
    waiting_room.admit(event, 1, now=now)
    assert waiting_room.place_of(1, event, now).state == "admitted"
    old_token = waiting_room.admission_token(1, event.id, waiting_room._now_ms(now) + 600_000)
    assert waiting_room.has_admission(buyer(1), event, now, old_token)

    new_on_sale = utcnow().replace(microsecond=0) + timedelta(minutes=5)
    events.update_event(event, details_of(event, sales_start_at=new_on_sale), actor=factory.admin())

    event = db.session.get(Event, event.id, populate_existing=True)
    later = new_on_sale + timedelta(seconds=1)
    assert not waiting_room.has_admission(buyer(1), event, later, old_token)
    stats = waiting_room.stats(event)
    assert (stats.waiting, stats.shopping, stats.admitted) == (0, 0, 0)
    # The new on-sale gets its own early window and draw.
    assert waiting_room.join(buyer(1), event, ip="10.0.0.1").state == "early"
    new_token = waiting_room.admission_token(1, event.id, waiting_room._now_ms(later) + 600_000)
    assert waiting_room.has_admission(buyer(1), event, later, new_token)
    line = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "event.waiting_room_restarted"))
    assert line is not None and line.event_id == event.id
    assert line.data["sales_start_at"][1] == new_on_sale.isoformat()


def test_bringing_the_on_sale_forward_keeps_the_early_arrivals(factory, redis_client, app):
    event = factory.event(rows=2, columns=5)
    event.sales_start_at = utcnow().replace(microsecond=0) + timedelta(minutes=10)
    event.waiting_room = WaitingRoomMode.ON_SALE
    db.session.commit()
    waiting_room.forget(event.id)
    assert waiting_room.join(buyer(1), event, ip="10.0.0.1").state == "early"
    events.update_event(event, details_of(event, sales_start_at=event.sales_start_at - timedelta(minutes=5)))
    assert waiting_room.place_of(1, db.session.get(Event, event.id)).state == "early"
    assert db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "event.waiting_room_restarted")) is None


def test_the_admin_form_postponing_the_on_sale_restarts_the_room(client, factory, redis_client, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    event = factory.event(rows=2, columns=5)
    event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.forget(event.id)
    waiting_room.join(buyer(1), event, ip="10.0.0.1")
    admin = factory.admin()
    log_in(client, admin)
    edit = f"/admin/events/{event.id}/edit"
    data = event_form(
        client,
        categories=(("Standard", "25.00", "", ""),),
        name=event.name,
        date=event.date.strftime("%Y-%m-%dT%H:%M"),
        rows="2",
        columns="5",
        sales_start_at=(utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        waiting_room="always",
    )
    assert client.post(edit, data=data).status_code == 302
    assert waiting_room.stats(db.session.get(Event, event.id)).waiting == 0
    line = db.session.scalar(sa.select(AuditEntry).where(AuditEntry.action == "event.waiting_room_restarted"))
    assert line is not None and line.actor_id == admin.id
