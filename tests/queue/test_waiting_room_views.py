"""The on-sale time and the waiting room as buyers and admins meet them through the web."""

import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import Event, Order, WaitingRoomMode, utcnow
from app.services import waiting_room
from tests.support import csrf_token, log_in


def hold(client, event, seat_ids):
    headers = {"Accept": "application/json", "X-CSRFToken": csrf_token(client, "/")}
    return client.post(f"/api/events/{event.id}/holds", json={"seat_ids": seat_ids}, headers=headers)


def seat_ids(event):
    from app.models import Seat

    return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)))


def room_event(factory, mode=WaitingRoomMode.ALWAYS, starts_in=None):
    event = factory.event(rows=2, columns=5)
    event.waiting_room = mode
    if starts_in is not None:
        event.sales_start_at = utcnow().replace(microsecond=0) + starts_in
    db.session.commit()
    waiting_room.forget(event.id)
    return event


# --- scheduled on-sale -------------------------------------------------------------------------


def test_before_the_on_sale_holds_are_refused_and_the_map_counts_down(client, factory, redis_client):
    event = room_event(factory, WaitingRoomMode.OFF, starts_in=timedelta(minutes=30))
    log_in(client, factory.user())
    response = hold(client, event, seat_ids(event)[:1])
    assert response.status_code == 409
    assert response.get_json()["code"] == "not_on_sale_yet"
    assert "on sale at" in response.get_json()["error"]
    assert db.session.scalar(sa.select(sa.func.count(Order.id))) == 0

    seats = client.get(f"/api/events/{event.id}/seats")
    state = seats.get_json()
    assert state["on_sale"] is False and state["sales_start_at"].startswith(event.sales_start_at.isoformat())
    assert 29 * 60_000 < int(seats.headers["X-Next-Change-In-Ms"]) <= 30 * 60_000
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "Tickets go on sale at" in page and 'data-sales-start-at="20' in page


def test_at_the_on_sale_moment_the_map_switches_to_selling(client, factory, redis_client):
    event = room_event(factory, WaitingRoomMode.OFF, starts_in=timedelta(seconds=3))  # 2-3 s: whole seconds
    log_in(client, factory.user())
    assert client.get(f"/api/events/{event.id}/seats").get_json()["on_sale"] is False
    time.sleep((event.sales_start_at - utcnow()).total_seconds() + 0.2)
    assert client.get(f"/api/events/{event.id}/seats").get_json()["on_sale"] is True
    assert hold(client, event, seat_ids(event)[:1]).status_code == 201


def test_the_on_sale_time_must_come_before_the_event(client, factory, redis_client):
    admin = factory.admin()
    event = room_event(factory, WaitingRoomMode.OFF)
    log_in(client, admin)
    form = client.get(f"/admin/events/{event.id}/edit").get_data(as_text=True)
    assert 'name="sales_start_at"' in form and 'name="waiting_room"' in form
    data = {
        "csrf_token": csrf_token(client, f"/admin/events/{event.id}/edit"),
        "name": event.name,
        "date": event.date.strftime("%Y-%m-%dT%H:%M"),
        "rows": 2,
        "columns": 5,
        "categories-0-name": "Standard",
        "categories-0-price": "25.00",
        "categories-0-color": "#2563eb",
        "sales_start_at": (event.date + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "waiting_room": "always",
        "waiting_room_rate": "120",
    }
    refused = client.post(f"/admin/events/{event.id}/edit", data=data)
    assert refused.status_code == 400
    assert "before the event starts" in refused.get_data(as_text=True)
    data["sales_start_at"] = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert client.post(f"/admin/events/{event.id}/edit", data=data).status_code == 302
    saved = db.session.get(Event, event.id, populate_existing=True)
    assert (saved.waiting_room, saved.waiting_room_rate) == ("always", 120)
    assert saved.sales_start_at is not None


# --- the waiting room ---------------------------------------------------------------------------


def test_holds_and_checkout_need_an_admission_while_the_room_is_active(client, factory, app, redis_client):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    event = room_event(factory)
    log_in(client, factory.user())
    refused = hold(client, event, seat_ids(event)[:1])
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "queue_required"
    assert refused.get_json()["waiting_room_url"] == f"/events/{event.id}/waiting-room"
    assert db.session.scalar(sa.select(sa.func.count(Order.id))) == 0
    page = client.get(f"/events/{event.id}")
    assert page.status_code == 302 and page.headers["Location"].endswith(f"/events/{event.id}/waiting-room")

    room = client.get(f"/events/{event.id}/waiting-room")
    assert room.status_code == 200 and "your place" in room.get_data(as_text=True)
    status = client.get(f"/api/events/{event.id}/waiting-room").get_json()
    assert (status["state"], status["position"], status["ahead"]) == ("queued", 1, 0)

    waiting_room.admit(db.session.get(Event, event.id), 1)
    admitted = client.get(f"/api/events/{event.id}/waiting-room")
    assert admitted.get_json()["state"] == "admitted"
    assert waiting_room.cookie_name(event.id) in admitted.headers["Set-Cookie"]
    assert client.get(f"/events/{event.id}").status_code == 200
    held = hold(client, event, seat_ids(event)[:1])
    assert held.status_code == 201, held.get_json()
    assert client.get(held.get_json()["checkout_url"]).status_code == 200
    assert waiting_room.stats(event).held == 1

    # Without the admission cookie, the checkout page sends the buyer back to the room.
    client.delete_cookie(waiting_room.cookie_name(event.id))
    checkout = client.get(held.get_json()["checkout_url"])
    assert checkout.status_code == 302 and checkout.headers["Location"].endswith("/waiting-room")


def test_an_admission_of_another_buyer_does_not_let_one_hold(client, factory, app, redis_client):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    event = room_event(factory)
    owner, other = factory.user(), factory.user()
    log_in(client, other)
    deadline = waiting_room._now_ms(utcnow()) + 60_000
    client.set_cookie(waiting_room.cookie_name(event.id), waiting_room.admission_token(owner.id, event.id, deadline))
    assert hold(client, event, seat_ids(event)[:1]).get_json()["code"] == "queue_required"
    client.set_cookie(waiting_room.cookie_name(event.id), waiting_room.admission_token(other.id, event.id, deadline))
    assert hold(client, event, seat_ids(event)[:1]).status_code == 201


def test_the_room_needs_an_account_and_stays_out_of_the_way_when_inactive(client, factory, redis_client):
    event = room_event(factory, WaitingRoomMode.OFF)
    assert client.get(f"/api/events/{event.id}/waiting-room").status_code == 401
    log_in(client, factory.user())
    assert client.get(f"/events/{event.id}/waiting-room").headers["Location"].endswith(f"/events/{event.id}")
    assert client.get(f"/api/events/{event.id}/waiting-room").get_json()["state"] == "open"
    assert hold(client, event, seat_ids(event)[:1]).status_code == 201


def test_the_room_stream_pushes_the_place_and_the_admission(client, factory, app, redis_client):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    event = room_event(factory)
    log_in(client, factory.user())
    client.get(f"/api/events/{event.id}/waiting-room")
    response = client.get(f"/events/{event.id}/waiting-room/stream")
    chunks = response.response
    assert next(chunks).startswith(b"retry:")
    first = next(chunks).decode()
    assert first.startswith("event: place") and '"position": 1' in first
    waiting_room.admit(db.session.get(Event, event.id), 1)
    while True:
        chunk = next(chunks).decode()
        if not chunk.startswith(":"):
            break
    assert chunk.startswith("event: done") and '"state": "admitted"' in chunk
    response.close()


def test_the_room_stream_learns_of_the_admission_at_once_not_at_its_next_look(
    client, factory, app, redis_client, monkeypatch
):
    """Another server admits the buyer: the room's message wakes the stream, which would
    otherwise not look at the place again for ten minutes."""
    from app.services import live

    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    app.config["SSE_HEARTBEAT_SECONDS"] = 600
    monkeypatch.setattr(waiting_room.Place, "poll_after_ms", lambda place, starts_in: 600_000)
    event = room_event(factory)
    log_in(client, factory.user())
    client.get(f"/api/events/{event.id}/waiting-room")
    response = client.get(f"/events/{event.id}/waiting-room/stream")
    chunks = response.response
    assert next(chunks).startswith(b"retry:") and next(chunks).startswith(b"event: place")
    assert live.hub().connected.wait(3)
    received = []
    reader = threading.Thread(target=lambda: received.append(next(chunks).decode()), daemon=True)
    reader.start()
    waiting_room.admit(db.session.get(Event, event.id), 1)
    reader.join(timeout=10)
    assert received and received[0].startswith("event: done") and '"state": "admitted"' in received[0]
    response.close()
    assert live.hub().turns == {}


def test_admins_see_the_room_and_pause_it(client, factory, redis_client):
    event = room_event(factory)
    log_in(client, factory.admin())
    page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert 'id="waiting-room-panel"' in page and 'id="room-waiting">0<' in page
    token = csrf_token(client, f"/admin/events/{event.id}")
    assert client.post(f"/admin/events/{event.id}/waiting-room/pause", data={"csrf_token": token}).status_code == 302
    assert waiting_room.stats(event).paused
    assert "Resume admissions" in client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    client.post(f"/admin/events/{event.id}/waiting-room/resume", data={"csrf_token": token})
    assert not waiting_room.stats(event).paused
