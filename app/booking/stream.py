"""Server-Sent Events: an event's seat changes pushed to the browser as they commit.

`snapshot`: the whole map, the counter it was read at and in how many ms it next changes by
itself; `change`: seats that changed, as read after the commit ("event": true: reload the map);
`down`: no push for now, poll until the next snapshot; `resync`: load the whole map again.
"""

import json
import queue
import time

from flask import Response, current_app
from werkzeug.exceptions import HTTPException

from app.booking import bp
from app.booking.api import visible_event
from app.extensions import db
from app.models import utcnow
from app.services import live, seatmap

NO_PUSH = "retry: 10000\nevent: down\ndata: {}\n\n"
DOWN = "event: down\ndata: {}\n\n"
RESYNC = "event: resync\ndata: {}\n\n"
KEEP_ALIVE = ": keep-alive\n\n"
# How soon an idle stream notices that its hub lost Redis (a Lost message usually wakes it sooner).
LINK_CHECK_SECONDS = 1.0


@bp.get("/events/<int:event_id>/stream")
def seat_stream(event_id):
    """The full map first, then every change; heartbeats keep proxies from closing it."""
    visible_event(event_id)
    db.session.remove()  # hold no database connection while the stream is idle
    hub = live.hub()
    inbox = hub.subscribe(event_id)  # before the snapshot, so no change can fall between the two
    stream = SeatStream(current_app._get_current_object(), hub, inbox, event_id)
    response = Response(
        stream.events(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
    response.call_on_close(stream.close)  # also when the browser leaves before the first byte
    return response


class SeatStream:
    """One browser's stream: a snapshot read under the hub's current subscription, then its changes."""

    def __init__(self, app, hub: live.Hub, inbox: live.Inbox, event_id: int):
        self.app = app
        self.hub = hub
        self.inbox = inbox
        self.event_id = event_id
        self.heartbeat = app.config["SSE_HEARTBEAT_SECONDS"]

    def close(self) -> None:
        self.hub.unsubscribe(self.event_id, self.inbox)

    def events(self):
        try:
            if not self.hub.connected.wait(timeout=2.0):
                yield NO_PUSH  # no Redis, no push: the page polls instead
                return
            yield "retry: 3000\n"
            while True:
                generation = self.hub.generation
                rendered = self._render()
                if rendered is None:
                    yield RESYNC  # the event is gone; the page learns it from the map
                    return
                if self.hub.connected.is_set() and self.hub.generation == generation:
                    yield self._snapshot(rendered)
                    if not (yield from self._changes(rendered, generation)):
                        return
                    yield DOWN
                while not self.hub.connected.wait(timeout=self.heartbeat):
                    yield KEEP_ALIVE
        finally:
            self.close()

    def _render(self) -> seatmap.RenderedMap | None:
        with self.app.app_context():
            try:
                return seatmap.rendered_map(self.event_id, load_event=visible_event)
            except HTTPException:
                return None
            finally:
                db.session.remove()

    @staticmethod
    def _snapshot(rendered: seatmap.RenderedMap) -> str:
        next_change = json.dumps(seatmap.ms_until(rendered.next_change, utcnow()))
        counter = json.dumps(rendered.counter)
        data = f'{{"counter":{counter},"next_change_in_ms":{next_change},"map":{rendered.body.decode()}}}'
        return f"event: snapshot\nid: {rendered.counter or 0}\ndata: {data}\n\n"

    def _changes(self, rendered: seatmap.RenderedMap, generation: int):
        """Send changes until the hub's subscription ends (True) or the browser falls behind (False)."""
        quiet_since = time.monotonic()
        while True:
            try:
                item = self.inbox.get(timeout=min(self.heartbeat, LINK_CHECK_SECONDS))
            except queue.Empty:
                item = None
            if self.inbox.overflowed:
                yield RESYNC
                return False
            if not self.hub.connected.is_set() or self.hub.generation != generation:
                return True  # what was published meanwhile never reached the hub
            if isinstance(item, live.Unreadable):
                yield RESYNC
            elif isinstance(item, live.Delivery) and item.read_at >= rendered.read_started:
                yield f"event: change\nid: {item.version}\ndata: {item.data}\n\n"
            elif isinstance(item, live.Delivery) or time.monotonic() - quiet_since < self.heartbeat:
                continue  # a change read before the snapshot was: the snapshot already has it
            else:
                yield KEEP_ALIVE
            quiet_since = time.monotonic()
