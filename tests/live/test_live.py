"""Push: changes are published once after commit, fanned out by one subscription per process."""

import contextlib
import json
import threading
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app import extensions
from app.models import Order, Seat, User, utcnow
from app.services import booking, events, live, seatmap
from app.services.live import publisher


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
        message = json.loads(inbox.get(timeout=2).data)
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
    inbox.get(timeout=2)
    with contextlib.suppress(booking.SeatUnavailable):
        booking.hold(factory.user(), event, ids)
    time.sleep(0.3)
    assert inbox.messages.empty()


def test_stream_says_down_without_redis(app, client, factory):
    app.config["REDIS_URL"] = "redis://127.0.0.1:1/0"
    event = factory.event(rows=1, columns=1)
    body = client.get(f"/events/{event.id}/stream").get_data(as_text=True)
    assert "event: down" in body and "retry: 10000" in body


def test_stream_of_a_draft_is_404(client, factory):
    assert client.get(f"/events/{factory.event(status='draft').id}/stream").status_code == 404


# --- streams that must not lose changes --------------------------------------------------------


class Stream:
    """A seat-map stream read by a thread of its own, its SSE blocks collected as they come."""

    def __init__(self, client, event_id):
        self.response = client.get(f"/events/{event_id}/stream", buffered=False)
        self.blocks, self.stop = [], threading.Event()
        self.reader = threading.Thread(target=read_events, args=(self.response, self.blocks, self.stop), daemon=True)
        self.reader.start()

    def of(self, kind):
        """The data of every block of this kind so far."""
        return [
            json.loads(block.split("data: ", 1)[1])
            for _, block in list(self.blocks)
            if f"event: {kind}\n" in block + "\n"
        ]

    def seat_state(self, seat_id):
        """What a browser applying snapshots and changes in order would show for the seat."""
        state = None
        for _, block in list(self.blocks):
            if "event: snapshot" in block:
                data = json.loads(block.split("data: ", 1)[1])
                state = next(seat[3] for seat in data["map"]["seats"] if seat[0] == seat_id)
            elif "event: change" in block:
                data = json.loads(block.split("data: ", 1)[1])
                state = next((code for sid, code in data["seats"] if sid == seat_id), state)
        return state

    def close(self, heartbeat):
        self.stop.set()
        self.reader.join(heartbeat + 2)  # the reader stops at the next block; closing under it would break it
        if not self.reader.is_alive():
            self.response.close()


@pytest.fixture
def open_stream(app, client):
    """Open an event's stream (heartbeats every `heartbeat` seconds) and wait for its snapshot."""
    streams = []

    def open_(event, heartbeat=1):
        app.config["SSE_HEARTBEAT_SECONDS"] = heartbeat
        stream = Stream(client, event.id)
        stream.heartbeat = heartbeat
        streams.append(stream)
        assert wait_for(lambda: stream.of("snapshot")), "no snapshot"
        return stream

    yield open_
    for stream in streams:
        stream.close(stream.heartbeat)


def test_stream_goes_down_with_redis_and_resyncs_when_it_comes_back(
    app, factory, db_session, open_stream, app_on_private_redis
):
    """The reported blip: Redis dies under an open stream, a hold commits, Redis restarts empty."""
    import redis

    private_redis = app_on_private_redis
    event = factory.event(rows=1, columns=3)
    ids = seat_ids(db_session, event, 3)
    redis.Redis.from_url(private_redis.url).set(seatmap.counter_key(event.id), 50)  # a busy event
    stream = open_stream(event, heartbeat=5)
    private_redis.stop()
    assert wait_for(lambda: stream.of("down"), seconds=1.5), "the stream did not notice that Redis died"
    booking.hold(factory.user(), event, ids[:1])  # commits while nothing can be published
    private_redis.start()  # empty: the event's counter is gone and starts again at 1
    assert wait_for(lambda: len(stream.of("snapshot")) == 2, seconds=6), "no fresh snapshot once Redis was back"
    assert stream.seat_state(ids[0]) == "r"
    booking.hold(factory.user(), event, ids[1:2])
    assert wait_for(lambda: stream.seat_state(ids[1]) == "r", seconds=2), "a change after the restart was dropped"


def test_a_change_is_pushed_after_the_event_counter_was_lost(app, factory, db_session, open_stream, redis_client):
    event = factory.event(rows=1, columns=2)
    ids = seat_ids(db_session, event, 2)
    redis_client.set(seatmap.counter_key(event.id), 100)
    stream = open_stream(event)
    redis_client.delete(seatmap.counter_key(event.id))  # evicted or flushed: counting starts again at 1
    booking.hold(factory.user(), event, ids[:1])
    assert wait_for(lambda: stream.seat_state(ids[0]) == "r", seconds=2), "a change with a lower version was dropped"


def test_a_change_redis_skipped_is_published_once_redis_answers(
    app, factory, db_session, open_stream, redis_client, monkeypatch
):
    event = factory.event(rows=1, columns=2)
    ids = seat_ids(db_session, event, 2)
    stream = open_stream(event)
    # A Redis error a moment ago: the process leaves Redis alone for a few seconds.
    monkeypatch.setattr(extensions, "_redis_down_until", [time.monotonic() + extensions.REDIS_RETRY_AFTER_SECONDS])
    booking.hold(factory.user(), event, ids[:1])
    assert wait_for(lambda: stream.seat_state(ids[0]) == "r", seconds=3), "the change was never published"


def test_the_later_of_two_commits_wins_even_when_its_announcement_comes_first(
    app, factory, db_session, open_stream, redis_client, monkeypatch
):
    """A hold commits, its announcement is held up; the seat is released and announced: the
    stream must end on 'free' although the hold's announcement comes last."""
    event = factory.event(rows=1, columns=2)
    seat_id = seat_ids(db_session, event)[0]
    buyer_id = factory.user().id
    stream = open_stream(event)
    held_up, go_on = threading.Event(), threading.Event()
    original = publisher.redis_call

    def slow_in_the_holding_thread(operation, default=None):
        if threading.current_thread().name == "holder":
            held_up.set()
            go_on.wait(5)
        return original(operation, default)

    monkeypatch.setattr(publisher, "redis_call", slow_in_the_holding_thread)

    def hold():
        with app.app_context():
            booking.hold(db_session.get(User, buyer_id), events.get_event(event.id), [seat_id])
            db_session.remove()

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    assert held_up.wait(5), "the hold did not commit"
    order = db_session.scalar(sa.select(Order).where(Order.user_id == buyer_id))
    booking.release(order, user=db_session.get(User, buyer_id))
    assert wait_for(lambda: stream.seat_state(seat_id) == "a" and len(stream.of("change")) == 1)
    go_on.set()
    holder.join(5)
    assert wait_for(lambda: len(stream.of("change")) == 2), "the hold was never announced"
    assert stream.seat_state(seat_id) == "a", "the browser would keep the older state"


def test_seat_states_say_when_the_map_next_changes_by_itself(app, client, factory, db_session):
    event = factory.event(rows=1, columns=3)
    ids = seat_ids(db_session, event, 2)
    sales_end_ms = int(client.get(f"/api/events/{event.id}/seats").headers["X-Next-Change-In-Ms"])
    assert abs(sales_end_ms - (event.date - utcnow()).total_seconds() * 1000) < 5000  # sales end
    booking.hold(factory.user(), event, ids[:1])
    response = client.get(f"/api/events/{event.id}/seats")
    ttl_ms = app.config["HOLD_TTL_SECONDS"] * 1000
    assert ttl_ms - 5000 < int(response.headers["X-Next-Change-In-Ms"]) <= ttl_ms
    unchanged = client.get(f"/api/events/{event.id}/seats", headers={"If-None-Match": response.headers["ETag"]})
    assert unchanged.status_code == 304 and int(unchanged.headers["X-Next-Change-In-Ms"]) <= ttl_ms


def test_an_event_level_change_is_pushed_and_shown_in_the_map(
    app, client, factory, db_session, open_stream, redis_client
):
    event = factory.event(rows=1, columns=2)
    assert client.get(f"/api/events/{event.id}/seats").get_json()["on_sale"] is True
    stream = open_stream(event)
    booking.cancel_event(event)
    assert wait_for(lambda: any(change["event"] for change in stream.of("change"))), "the cancellation was not pushed"
    state = client.get(f"/api/events/{event.id}/seats").get_json()
    assert (state["status"], state["on_sale"]) == ("cancelled", False)


def test_resizing_a_published_event_is_pushed_as_an_event_change(app, factory, db_session, open_stream, redis_client):
    event = factory.event(rows=1, columns=2)
    stream = open_stream(event)
    events.update_event(
        event, events.EventDetails(event.name, event.date, 2, 3, [events.CategorySpec("Standard", Decimal("30.00"))])
    )
    assert wait_for(lambda: any(change["event"] for change in stream.of("change"))), "the new map was not announced"


def test_changes_waiting_to_be_published_again_keep_the_newest_states():
    unsent, dead = live.Unsent(), "redis://127.0.0.1:1/0"
    unsent.add(dead, 7, [[1, "r"], [2, "r"]], False)
    unsent.add(dead, 7, [[1, "a"]], True)
    waiting = unsent.changes[(dead, 7)]
    assert (waiting["seats"], waiting["event"]) == ({1: "a", 2: "r"}, True)
