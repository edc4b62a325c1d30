"""The live hub: one Redis subscription per app process, fanning seat changes out to the browser
streams of that process, each change's seats read from the database after it arrived, and waking
the waiting-room streams of buyers the room admitted.

(The design, including ordering and loss, is in app/services/live/__init__.py.)
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass

import redis
import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import utcnow
from app.services import seatmap
from app.services.live.publisher import ROOM, STATE_KEY, channel_pattern, room_channel_pattern

log = logging.getLogger(__name__)
_ROOM_CHANNEL_END = f":{ROOM}".encode()  # how a waiting room's channel name ends, as Redis gives it

RECONNECT_SECONDS = 1.0
RECEIVE_BATCH = 500


class Lost:
    """The hub's subscription ended: a stream that gets this checks the hub and resyncs."""


class RoomNews:
    """The waiting room admitted this buyer or opened: their stream looks at their place now."""


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
    A waiting-room stream waits for its buyer's turn on an inbox of its own (`await_turn`).
    """

    def __init__(self, redis_url: str, app=None):
        self.redis_url = redis_url
        self.app = app
        self.listeners: dict[int, set[Inbox]] = {}
        self.turns: dict[int, dict[int, set[Inbox]]] = {}  # event -> buyer -> their room streams
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

    def await_turn(self, event_id: int, user_id: int) -> Inbox:
        """An inbox that gets RoomNews when the event's room admits this buyer or opens, and Lost
        when the hub loses Redis (news may be missed until it is back)."""
        self.ensure_running()
        inbox = Inbox(size=10)
        with self.lock:
            self.turns.setdefault(event_id, {}).setdefault(user_id, set()).add(inbox)
        return inbox

    def stop_awaiting(self, event_id: int, user_id: int, inbox: Inbox) -> None:
        with self.lock:
            buyers = self.turns.get(event_id, {})
            inboxes = buyers.get(user_id)
            if inboxes is not None:
                inboxes.discard(inbox)
                if not inboxes:
                    del buyers[user_id]
            if not buyers:
                self.turns.pop(event_id, None)

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
                    changes, room_news = self._receive(pubsub)
                    self._wake(room_news)
                    self._deliver(changes)
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
        patterns = (channel_pattern(self.redis_url), room_channel_pattern(self.redis_url))
        pubsub.psubscribe(*patterns)
        # Subscribed only once Redis confirms it: a snapshot read before then could miss a change.
        deadline = time.monotonic() + 5
        confirmed = 0
        while confirmed < len(patterns):
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "psubscribe":
                confirmed += 1
            elif time.monotonic() > deadline:
                raise redis.TimeoutError("Redis did not confirm the subscription")
        with self.lock:
            self.generation += 1
        self.connected.set()
        log.info("live hub subscribed to %s", " and ".join(patterns))

    def _lose(self, error) -> None:
        if not self.connected.is_set():
            log.debug("live hub still without Redis (%s)", error)
            return
        self.connected.clear()
        log.warning("live hub lost Redis (%s); streams resync once it is back", error)
        with self.lock:
            inboxes = [inbox for event_inboxes in self.listeners.values() for inbox in event_inboxes]
            inboxes += [inbox for buyers in self.turns.values() for own in buyers.values() for inbox in own]
        for inbox in inboxes:
            inbox.put(Lost())

    def _receive(self, pubsub) -> tuple[list[dict], list[dict]]:
        """The seat changes and the room news that arrived (waiting up to a second for the first)."""
        changes, room_news = [], []
        message = pubsub.get_message(timeout=1.0)
        while message is not None and len(changes) + len(room_news) < RECEIVE_BATCH:
            if message["type"] == "pmessage":
                try:
                    data = json.loads(message["data"])
                except ValueError:
                    log.warning("live hub skipped a malformed message on %s", message["channel"])
                else:
                    (room_news if message["channel"].endswith(_ROOM_CHANNEL_END) else changes).append(data)
            message = pubsub.get_message(timeout=0.0)
        return changes, room_news

    def _wake(self, room_news: list[dict]) -> None:
        """Wake the room streams of the buyers admitted (all of an event's, when its room opened)."""
        woken = []
        with self.lock:
            for news in room_news:
                buyers = self.turns.get(news.get("event_id"), {})
                if news.get("opened"):
                    woken += [inbox for own in buyers.values() for inbox in own]
                else:
                    woken += [inbox for user in news.get("users", ()) for inbox in buyers.get(user, ())]
        for inbox in woken:
            inbox.put(RoomNews())

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


def hub() -> Hub:
    """This process's hub for the app's Redis."""
    url = current_app.config["REDIS_URL"]
    state = current_app.extensions[STATE_KEY]
    with state.lock:
        if url not in state.hubs:
            state.hubs[url] = Hub(url, current_app._get_current_object())
        return state.hubs[url]


def forget_hub(redis_url: str) -> None:
    """Stop and drop this process's hub for that Redis (for an app moved to another Redis)."""
    state = current_app.extensions[STATE_KEY]
    with state.lock:
        stopped = state.hubs.pop(redis_url, None)
    if stopped is not None:
        stopped.stop()
