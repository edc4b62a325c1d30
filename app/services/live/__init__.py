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

import threading
from dataclasses import dataclass, field

from app.services import seat_changes, seatmap
from app.services.live.hub import Delivery, Hub, Inbox, Lost, RoomNews, Unreadable, forget_hub, hub
from app.services.live.publisher import (
    STATE_KEY,
    Unsent,
    channel,
    channel_pattern,
    forget_unsent,
    publish_change,
    room_channel,
)

__all__ = [
    "Delivery",
    "Hub",
    "Inbox",
    "Lost",
    "Unreadable",
    "Unsent",
    "channel",
    "channel_pattern",
    "forget_hub",
    "forget_unsent",
    "hub",
    "init_app",
    "publish_change",
    "room_channel",
    "RoomNews",
]


@dataclass
class LiveState:
    """This process's live machinery for one app: its hubs (one per Redis) and unsent changes."""

    hubs: dict[str, Hub] = field(default_factory=dict)
    unsent: Unsent = field(default_factory=Unsent)
    lock: threading.Lock = field(default_factory=threading.Lock)


def init_app(app) -> None:
    """Publish every committed seat change of this app, described by the seat map's state codes."""
    app.extensions[STATE_KEY] = LiveState()
    seat_changes.init_app(app)
    seat_changes.on_seats_changed(app, publish_change)
    seat_changes.describe_with(app, seatmap.seat_codes)
