"""Publishing seat changes: after each commit, bump the event's counter and announce the change on
Redis in one step; keep what could not be published and send it once Redis answers.

(The design, including why messages only say which seats changed, is in app/services/live/__init__.py.)
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time

import redis
from flask import current_app

from app.extensions import redis_call, run_script
from app.services import seatmap

log = logging.getLogger(__name__)

STATE_KEY = "stagepass_live"
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


SEATS, ROOM = "seats", "room"  # an event's two channels: its seat changes, its waiting room's news


def _event_channel(redis_url: str, event: int | str, kind: str) -> str:
    """The name of an event's channel of this kind (`event` "*": the pattern of all events')."""
    return f"stagepass:db{_redis_db(redis_url)}:event:{event}:{kind}"


def channel_pattern(redis_url: str) -> str:
    return _event_channel(redis_url, "*", SEATS)


def channel(event_id: int, redis_url: str | None = None) -> str:
    return _event_channel(redis_url or current_app.config["REDIS_URL"], event_id, SEATS)


# The waiting room's news, published by its admission script: {"users": [ids admitted], "opened": bool}.
def room_channel_pattern(redis_url: str) -> str:
    return _event_channel(redis_url, "*", ROOM)


def room_channel(event_id: int, redis_url: str | None = None) -> str:
    return _event_channel(redis_url or current_app.config["REDIS_URL"], event_id, ROOM)


def _send(client, redis_url: str, event_id: int, seat_states, event_changed: bool) -> int:
    rest = json.dumps({"event_id": event_id, "seats": seat_states, "event": event_changed})[1:]
    return run_script(client, _BUMP_AND_PUBLISH, 1, seatmap.counter_key(event_id), channel(event_id, redis_url), rest)


def publish_change(event_id: int, seat_states, event_changed: bool = False) -> None:
    """After a commit: forget this process's cached map, bump the event's counter, publish the change."""
    seatmap.forget_rendered_map(event_id)
    redis_url = current_app.config["REDIS_URL"]
    version = redis_call(lambda client: _send(client, redis_url, event_id, seat_states, event_changed))
    if version is None:
        current_app.extensions[STATE_KEY].unsent.add(redis_url, event_id, seat_states, event_changed)


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


def forget_unsent() -> None:
    """Drop the changes waiting to be published again (a test starts from a quiet process)."""
    unsent = current_app.extensions[STATE_KEY].unsent
    with unsent.lock:
        unsent.changes.clear()
