"""Live seat changes: published once to Redis after each commit, fanned out to browsers by one
subscription per app process.

Channel per event: stagepass:db<N>:event:<id>:seats, where N is the Redis database of REDIS_URL
(pub/sub ignores databases, so without it a test run on db 15 would push into a server on db 0).
A message is
{"event_id": 7, "version": 42, "seats": [[seat_id, "a"|"r"|"b"], ...]}; version is the event's
change counter (the same one the seat-map cache is keyed on), so a browser can tell order and gaps.
"""
from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time

import redis
from flask import current_app

from app.extensions import redis_call
from app.services import seat_changes, seatmap

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _redis_db(redis_url: str) -> int:
    return int(redis.connection.parse_url(redis_url).get("db", 0))


def channel_pattern(redis_url: str) -> str:
    return f"stagepass:db{_redis_db(redis_url)}:event:*:seats"


def channel(event_id: int, redis_url: str | None = None) -> str:
    redis_url = redis_url or current_app.config["REDIS_URL"]
    return f"stagepass:db{_redis_db(redis_url)}:event:{event_id}:seats"


def event_id_of(channel_name: bytes) -> int:
    return int(channel_name.decode().split(":")[3])


@seat_changes.on_seats_changed
def publish_change(event_id: int, seat_states) -> None:
    """After a commit: forget this process's cached map, bump the event's counter, publish the change."""
    seatmap.forget_rendered_map(event_id)

    def bump_and_publish(client):
        version = client.incr(seatmap.counter_key(event_id))
        client.publish(channel(event_id), json.dumps({"event_id": event_id, "version": version, "seats": seat_states}))

    redis_call(bump_and_publish)


seat_changes.describe_with(seatmap.seat_codes)


class Inbox:
    """One browser stream's messages. A stream that stops reading overflows and must resync."""

    def __init__(self, size: int = 1000):
        self.messages: queue.Queue = queue.Queue(maxsize=size)
        self.overflowed = False

    def put(self, message: str) -> None:
        try:
            self.messages.put_nowait(message)
        except queue.Full:
            self.overflowed = True


class Hub:
    """One Redis subscription per process; each browser stream gets its own inbox."""

    def __init__(self, redis_url: str):
        self.redis_url = redis_url
        self.listeners: dict[int, set[Inbox]] = {}
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.thread: threading.Thread | None = None

    def ensure_running(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="stagepass-live-hub", daemon=True)
                self.thread.start()

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

    def _deliver(self, event_id: int, message: str) -> None:
        with self.lock:
            inboxes = list(self.listeners.get(event_id, ()))
        for inbox in inboxes:
            inbox.put(message)

    def _run(self) -> None:
        while True:
            try:
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=30)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pattern = channel_pattern(self.redis_url)
                pubsub.psubscribe(pattern)
                self.connected.set()
                log.info("live hub subscribed to %s", pattern)
                while True:
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    self._deliver(event_id_of(message["channel"]), message["data"].decode())
            except (redis.RedisError, OSError, ValueError) as error:
                self.connected.clear()
                log.warning("live hub lost Redis (%s); retrying in 2 s", error)
                time.sleep(2)


_hubs: dict[str, Hub] = {}
_hubs_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub for the app's Redis."""
    url = current_app.config["REDIS_URL"]
    with _hubs_lock:
        if url not in _hubs:
            _hubs[url] = Hub(url)
        return _hubs[url]
