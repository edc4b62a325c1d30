"""What the room tells its buyers when nothing is left to sell."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Seat, SeatStatus, WaitingRoomMode, utcnow
from app.services import waiting_room, waitlist
from app.services.catalog import SaleState, sale_state
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
    assert status["state"] == "sold_out" and status["poll_after_ms"] == waiting_room.SOLD_OUT_POLL_MS
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
