"""Push: changes are published once after commit, fanned out by one subscription per process."""
import json
import threading
import time

import sqlalchemy as sa

from app.models import Seat
from app.services import booking, live


def seat_ids(db_session, event, count=1):
    return db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()[:count]


def read_events(response, into, stop):
    """Collect SSE blocks from a streaming test response until `stop` is set."""
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            into.append((time.perf_counter(), block))
        if stop.is_set():
            return


def wait_for(predicate, seconds=3.0):
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_stream_sends_snapshot_then_changes(app, client, factory, db_session, redis_client):
    app.config["SSE_HEARTBEAT_SECONDS"] = 1
    event = factory.event(rows=1, columns=3)
    ids = seat_ids(db_session, event, 2)
    response = client.get(f"/events/{event.id}/stream", buffered=False)
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no" and response.headers["Cache-Control"] == "no-cache"
    blocks, stop = [], threading.Event()
    reader = threading.Thread(target=read_events, args=(response, blocks, stop), daemon=True)
    reader.start()
    assert wait_for(lambda: any("event: snapshot" in b for _, b in blocks))
    snapshot = next(b for _, b in blocks if "event: snapshot" in b)
    assert [s[3] for s in json.loads(snapshot.split("data: ", 1)[1])["map"]["seats"]] == ["a", "a", "a"]

    sent = time.perf_counter()
    booking.hold(factory.user(), event, ids)
    assert wait_for(lambda: any("event: change" in b for _, b in blocks), seconds=1.0), "no change within a second"
    arrived, change = next((t, b) for t, b in blocks if "event: change" in b)
    assert arrived - sent < 1.0
    payload = json.loads(change.split("data: ", 1)[1])
    assert payload["event_id"] == event.id and payload["seats"] == [[ids[0], "r"], [ids[1], "r"]]
    assert wait_for(lambda: any(b.startswith(": keep-alive") for _, b in blocks), seconds=3.0)
    stop.set()
    reader.join(timeout=3)
    response.close()


def test_each_process_hub_receives_each_change_once(app, factory, db_session, redis_client):
    first, second = live.Hub(app.config["REDIS_URL"]), live.Hub(app.config["REDIS_URL"])
    event = factory.event(rows=1, columns=2)
    inboxes = [first.subscribe(event.id), first.subscribe(event.id), second.subscribe(event.id)]
    assert first.connected.wait(3) and second.connected.wait(3)
    time.sleep(0.2)
    booking.hold(factory.user(), event, seat_ids(db_session, event))
    for inbox in inboxes:
        message = json.loads(inbox.messages.get(timeout=2))
        assert message["event_id"] == event.id
    time.sleep(0.3)
    assert all(inbox.messages.empty() for inbox in inboxes), "a change was delivered twice"
    assert first.stream_count() == 2 and second.stream_count() == 1


def test_nothing_is_published_for_a_refused_hold(app, factory, db_session, redis_client):
    event = factory.event(rows=1, columns=2)
    hub = live.Hub(app.config["REDIS_URL"])
    inbox = hub.subscribe(event.id)
    assert hub.connected.wait(3)
    time.sleep(0.2)
    ids = seat_ids(db_session, event)
    booking.hold(factory.user(), event, ids)
    inbox.messages.get(timeout=2)
    try:
        booking.hold(factory.user(), event, ids)
    except booking.SeatUnavailable:
        pass
    time.sleep(0.3)
    assert inbox.messages.empty()


def test_stream_says_down_without_redis(app, client, factory):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    event = factory.event(rows=1, columns=1)
    body = client.get(f"/events/{event.id}/stream").get_data(as_text=True)
    assert "event: down" in body and "retry: 10000" in body


def test_stream_of_a_draft_is_404(client, factory):
    assert client.get(f"/events/{factory.event(status='draft').id}/stream").status_code == 404
