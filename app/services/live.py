"""Live seat changes: published once to Redis after each commit, fanned out to browsers by one
subscription per app process.

Channel per event: stagepass:db<N>:event:<id>:seats, where N is the Redis database of REDIS_URL
(pub/sub ignores databases, so without it a test run on db 15 would push into a server on db 0).
A message is {"version": 42, "event_id": 7, "seats": [[seat_id, "a"|"r"|"b"], ...], "event": false}.
version is the event's change counter (the one the seat-map cache is keyed on), bumped and
published in one step, so a subscriber sees an event's versions in order; "event" says the event
itself changed (cancelled, resized, re-priced, sales ended): pages load the whole map again.

Order: two commits that change one seat follow each other (the row lock), but each announces
itself after its commit, from its own process, so the announcements can arrive the other way
round. A message is therefore taken only as "these seats changed": the hub reads their states
from the database once the message has arrived (so after the commit it announces) and sends
browsers what it read. One hub reads one batch after another, so the last state a browser gets
for a seat is never older than the last change announced for it.

Loss: a hub that loses its subscription wakes its streams at once (they say "down", the page
polls the database) and, subscribed again, they send the whole map. A change this process could
not publish (Redis down, or left alone after an error) is kept and published once Redis answers.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from flask import current_app

from app.extensions import db, redis_call
from app.models import utcnow
from app.services import seat_changes, seatmap

log = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0
RECEIVE_BATCH = 500
REPUBLISH_SECONDS = 0.5
# Past this a real outage has cost every hub its subscription too, and their streams resynced.
REPUBLISH_GIVE_UP_SECONDS = 60.0

# INCR and PUBLISH in one step. ARGV[2] is the rest of the message's JSON, without its "{".
_BUMP_AND_PUBLISH = """
local version = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], '{"version":' .. version .. ',' .. ARGV[2])
return version
"""


@functools.lru_cache(maxsize=8)
def _redis_db(redis_url: str) -> int:
    return int(redis.connection.parse_url(redis_url).get("db", 0))


def channel_pattern(redis_url: str) -> str:
    return f"stagepass:db{_redis_db(redis_url)}:event:*:seats"


def channel(event_id: int, redis_url: str | None = None) -> str:
    redis_url = redis_url or current_app.config["REDIS_URL"]
    return f"stagepass:db{_redis_db(redis_url)}:event:{event_id}:seats"


def _send(client, redis_url: str, event_id: int, seat_states, event_changed: bool) -> int:
    rest = json.dumps({"event_id": event_id, "seats": seat_states, "event": event_changed})[1:]
    return client.eval(_BUMP_AND_PUBLISH, 1, seatmap.counter_key(event_id), channel(event_id, redis_url), rest)


@seat_changes.on_seats_changed
def publish_change(event_id: int, seat_states, event_changed: bool = False) -> None:
    """After a commit: forget this process's cached map, bump the event's counter, publish the change."""
    seatmap.forget_rendered_map(event_id)
    redis_url = current_app.config["REDIS_URL"]
    version = redis_call(lambda client: _send(client, redis_url, event_id, seat_states, event_changed))
    if version is None:
        _unsent.add(redis_url, event_id, seat_states, event_changed)


seat_changes.describe_with(seatmap.seat_codes)


class Unsent:
    """Changes this process could not publish, merged per event and sent again until Redis takes them."""

    def __init__(self):
        self.changes: dict[tuple[str, int], dict] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, redis_url: str, event_id: int, seat_states, event_changed: bool) -> None:
        with self.lock:
            pending = self.changes.setdefault(
                (redis_url, event_id), {"seats": {}, "event": False, "since": time.monotonic()}
            )
            pending["seats"].update(seat_states)
            pending["event"] = pending["event"] or event_changed
            if self.thread is None:
                log.warning("could not publish seat changes; publishing them once Redis answers")
                self.thread = threading.Thread(target=self._run, name="stagepass-live-republish", daemon=True)
                self.thread.start()

    def _put_back(self, key, older: dict) -> None:
        """A change that failed again, under whatever was added for its event meanwhile."""
        newer = self.changes.get(key)
        if newer is not None:
            older["seats"].update(newer["seats"])
            older["event"] = older["event"] or newer["event"]
        self.changes[key] = older

    def _run(self) -> None:
        clients = {}
        while True:
            time.sleep(REPUBLISH_SECONDS)
            with self.lock:
                pending, self.changes = self.changes, {}
            for (redis_url, event_id), change in pending.items():
                if redis_url not in clients:
                    clients[redis_url] = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
                try:
                    _send(
                        clients[redis_url],
                        redis_url,
                        event_id,
                        sorted(map(list, change["seats"].items())),
                        change["event"],
                    )
                except redis.RedisError:
                    if time.monotonic() - change["since"] < REPUBLISH_GIVE_UP_SECONDS:
                        with self.lock:
                            self._put_back((redis_url, event_id), change)
                    else:
                        log.warning("gave up publishing a change of event %s", event_id)
            with self.lock:
                if not self.changes:
                    self.thread = None
                    return


_unsent = Unsent()


def forget_unsent() -> None:
    """Drop the changes waiting to be published again (a test starts from a quiet process)."""
    with _unsent.lock:
        _unsent.changes.clear()


class Lost:
    """The hub's subscription ended: a stream that gets this checks the hub and resyncs."""


class Unreadable:
    """The hub could not read the changed seats (database trouble): the page should reload the map."""


@dataclass
class Delivery:
    version: int | None
    data: str  # the change as JSON, with its seats' states as read after it arrived
    read_at: float  # time.monotonic() once those states had been read


class Inbox:
    """One browser stream's messages. A stream that stops reading overflows and must resync."""

    def __init__(self, size: int = 1000):
        self.messages: queue.Queue = queue.Queue(maxsize=size)
        self.overflowed = False

    def put(self, item) -> None:
        try:
            self.messages.put_nowait(item)
        except queue.Full:
            self.overflowed = True

    def get(self, timeout: float):
        """The next item, or queue.Empty after `timeout` seconds."""
        return self.messages.get(timeout=timeout)


class Hub:
    """One Redis subscription per process; each browser stream gets its own inbox.

    `generation` counts the subscriptions made: a stream whose snapshot was read under an earlier
    one may have missed changes. Given the app, the hub reads the changed seats' states itself.
    """

    def __init__(self, redis_url: str, app=None):
        self.redis_url = redis_url
        self.app = app
        self.listeners: dict[int, set[Inbox]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.generation = 0
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.stopped.clear()
                self.thread = threading.Thread(target=self._run, name="stagepass-live-hub", daemon=True)
                self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def subscribe(self, event_id: int) -> Inbox:
        self.ensure_running()
        inbox = Inbox()
        with self.lock:
            self.listeners.setdefault(event_id, set()).add(inbox)
        return inbox

    def unsubscribe(self, event_id: int, inbox: Inbox) -> None:
        with self.lock:
            inboxes = self.listeners.get(event_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del self.listeners[event_id]

    def stream_count(self) -> int:
        with self.lock:
            return sum(len(inboxes) for inboxes in self.listeners.values())

    def _run(self) -> None:
        while not self.stopped.is_set():
            client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=30)
            pubsub = client.pubsub()
            try:
                self._subscribe(pubsub)
                while not self.stopped.is_set():
                    self._deliver(self._receive(pubsub))
            except (redis.RedisError, OSError) as error:
                self._lose(error)
                self.stopped.wait(RECONNECT_SECONDS)
            except Exception as error:  # the hub must outlive any surprise, or its streams would wait forever
                log.exception("live hub failed")
                self._lose(error)
                self.stopped.wait(RECONNECT_SECONDS)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
        self._lose("stopped")

    def _subscribe(self, pubsub) -> None:
        pattern = channel_pattern(self.redis_url)
        pubsub.psubscribe(pattern)
        # Subscribed only once Redis confirms it: a snapshot read before then could miss a change.
        deadline = time.monotonic() + 5
        while (message := pubsub.get_message(timeout=1.0)) is None or message["type"] != "psubscribe":
            if time.monotonic() > deadline:
                raise redis.TimeoutError("Redis did not confirm the subscription")
        with self.lock:
            self.generation += 1
        self.connected.set()
        log.info("live hub subscribed to %s", pattern)

    def _lose(self, error) -> None:
        if not self.connected.is_set():
            log.debug("live hub still without Redis (%s)", error)
            return
        self.connected.clear()
        log.warning("live hub lost Redis (%s); streams resync once it is back", error)
        with self.lock:
            inboxes = [inbox for event_inboxes in self.listeners.values() for inbox in event_inboxes]
        for inbox in inboxes:
            inbox.put(Lost())

    def _receive(self, pubsub) -> list[dict]:
        """The changes that arrived (waiting up to a second for the first one)."""
        changes = []
        message = pubsub.get_message(timeout=1.0)
        while message is not None and len(changes) < RECEIVE_BATCH:
            if message["type"] == "pmessage":
                try:
                    changes.append(json.loads(message["data"]))
                except ValueError:
                    log.warning("live hub skipped a malformed message on %s", message["channel"])
            message = pubsub.get_message(timeout=0.0)
        return changes

    def _deliver(self, changes: list[dict]) -> None:
        with self.lock:
            changes = [change for change in changes if change.get("event_id") in self.listeners]
        if not changes:
            return
        for change, item in zip(changes, self._read(changes), strict=True):
            with self.lock:
                inboxes = list(self.listeners.get(change["event_id"], ()))
            for inbox in inboxes:
                inbox.put(item)

    def _read(self, changes: list[dict]) -> list:
        """Each change as a Delivery, its seats' states read now (one query for the whole batch)."""
        if self.app is None:
            received = time.monotonic()
            return [Delivery(change.get("version"), json.dumps(change), received) for change in changes]
        seat_ids = sorted({seat_id for change in changes for seat_id, _ in change["seats"]})
        now = utcnow()
        current = {}
        try:
            if seat_ids:
                with self.app.app_context(), db.engine.connect() as connection:
                    current = {
                        seat_id: (code, expires)
                        for seat_id, code, expires in seatmap.seats_now(connection, seat_ids, now)
                    }
        except sa.exc.SQLAlchemyError as error:
            log.warning("live hub could not read the changed seats (%s); pages reload the map", error)
            return [Unreadable() for _ in changes]
        read_at = time.monotonic()
        return [
            Delivery(change.get("version"), json.dumps(_as_read(change, current, now)), read_at) for change in changes
        ]


def _as_read(change: dict, current: dict, now) -> dict:
    seat_ids = [seat_id for seat_id, _ in change["seats"] if seat_id in current]
    expiries = [current[seat_id][1] for seat_id in seat_ids if current[seat_id][1] is not None]
    return {
        **change,
        "seats": [[seat_id, current[seat_id][0]] for seat_id in seat_ids],
        "next_change_in_ms": seatmap.ms_until(min(expiries, default=None), now),
    }


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub for the app's Redis."""
    url = current_app.config["REDIS_URL"]
    with _hubs_lock:
        if url not in _hubs:
            _hubs[url] = Hub(url, current_app._get_current_object())
        return _hubs[url]


def forget_hub(redis_url: str) -> None:
    """Stop and drop this process's hub for that Redis (for an app moved to another Redis)."""
    with _hubs_lock:
        stopped = _hubs.pop(redis_url, None)
    if stopped is not None:
        stopped.stop()
