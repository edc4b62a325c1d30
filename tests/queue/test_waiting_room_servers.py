"""The waiting room across app servers, and through a Redis restart."""

import sqlalchemy as sa

from app import extensions
from app.extensions import db
from app.models import Event, Seat, WaitingRoomMode
from app.services import waiting_room
from scripts.bench.client import Browser
from tests.support import PASSWORD, app_servers, csrf_token, log_in


def first_seats(event, count):
    return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id).limit(count)))


def always_on_event(factory):
    event = factory.event(rows=2, columns=5)
    event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.forget(event.id)
    return event


def test_one_queue_across_two_app_servers(app, factory, redis_client):
    """Buyers joining through different servers share one queue; an admission from one server holds on the other."""
    event = always_on_event(factory)
    buyers = [factory.user() for _ in range(3)]
    with app_servers(app, 2, WAITING_ROOM_MIN_ACTIVE="0", RATELIMIT_ENABLED="0") as (first, second):
        browsers = [Browser(url) for url in (first, second, first)]
        for browser, user in zip(browsers, buyers, strict=True):
            browser.log_in(user.email, PASSWORD)
        room = f"/api/events/{event.id}/waiting-room"
        positions = [browser.get(room, {"Accept": "application/json"}).json()["position"] for browser in browsers]
        assert positions == [1, 2, 3]
        # Buyer 2 asks the other server: same place.
        elsewhere = Browser(first)
        elsewhere.cookies = dict(browsers[1].cookies)
        assert elsewhere.get(room).json()["position"] == 2

        waiting_room.admit(db.session.get(Event, event.id), 1)
        moved = Browser(second)
        moved.cookies = dict(browsers[0].cookies)
        assert moved.get(room).json()["state"] == "admitted"  # sets the admission cookie from server 2
        moved.refresh_csrf("/")
        held = moved.post_json(f"/api/events/{event.id}/holds", {"seat_ids": first_seats(event, 1)})
        assert held.status == 201, held.text
        # The other buyers moved up, seen from either server; they still cannot hold.
        assert browsers[1].get(room).json()["position"] == 1
        assert elsewhere.get(room).json()["position"] == 1
        browsers[2].refresh_csrf("/")
        refused = browsers[2].post_json(f"/api/events/{event.id}/holds", {"seat_ids": first_seats(event, 2)[1:]})
        assert refused.status == 409 and refused.json()["code"] == "queue_required"
        for browser in (*browsers, elsewhere, moved):
            browser.close()


def hold(client, event, seat_ids):
    headers = {"Accept": "application/json", "X-CSRFToken": csrf_token(client, "/")}
    return client.post(f"/api/events/{event.id}/holds", json={"seat_ids": seat_ids}, headers=headers)


def test_redis_restarted_mid_queue_the_database_keeps_selling_correctly(app, factory, app_on_private_redis):
    """Redis down: the room stands aside and the database decides every seat; back (empty): the room
    is in front again, the queue starts over in the order buyers come back."""
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    event = always_on_event(factory)
    first, second, third = (app.test_client() for _ in range(3))
    for client in (first, second, third):
        log_in(client, factory.user())
    for client in (first, second):
        assert client.get(f"/api/events/{event.id}/waiting-room").get_json()["state"] == "queued"
    assert hold(first, event, first_seats(event, 1)).get_json()["code"] == "queue_required"

    app_on_private_redis.stop()
    seat = first_seats(event, 1)
    assert hold(first, event, seat).status_code == 201  # no room without Redis: straight to the database
    taken = hold(second, event, seat)
    assert taken.status_code == 409 and taken.get_json()["code"] == "seat_unavailable"  # still sold once
    assert hold(second, event, first_seats(event, 2)[1:]).status_code == 201

    app_on_private_redis.start()
    extensions._redis_down_until[0] = 0.0  # the app would leave Redis alone a few seconds longer
    assert waiting_room.is_active(event)
    refused = hold(third, event, first_seats(event, 3)[2:])
    assert refused.status_code == 409 and refused.get_json()["code"] == "queue_required"
    assert third.get(f"/api/events/{event.id}/waiting-room").get_json()["position"] == 1
    assert first.get(f"/api/events/{event.id}/waiting-room").get_json()["position"] == 2
