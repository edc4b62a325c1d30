"""Server-Sent Events: an event's seat changes pushed to the browser as they commit."""
import json
import queue

from flask import Response, current_app

from app.booking import bp
from app.booking.api import visible_event
from app.extensions import db
from app.services import live, seatmap

DOWN = "retry: 10000\nevent: down\ndata: {}\n\n"


@bp.get("/events/<int:event_id>/stream")
def seat_stream(event_id):
    """The full map first, then every change; heartbeats keep proxies from closing it."""
    visible_event(event_id)
    hub = live.hub()
    inbox = hub.subscribe(event_id)  # before the snapshot, so no change can fall between the two
    counter = seatmap.change_counter(event_id) or 0
    snapshot = seatmap.rendered_map(event_id, load_event=visible_event)
    db.session.remove()  # hold no database connection while the stream is idle
    heartbeat = current_app.config["SSE_HEARTBEAT_SECONDS"]

    def events():
        try:
            if not hub.connected.wait(timeout=2.0):
                yield DOWN  # no Redis, no push: the page polls instead
                return
            yield "retry: 3000\n"
            yield f'event: snapshot\nid: {counter}\ndata: {{"counter":{counter},"map":{snapshot.body.decode()}}}\n\n'
            while True:
                try:
                    message = inbox.messages.get(timeout=heartbeat)
                except queue.Empty:
                    if not hub.connected.is_set():
                        yield DOWN
                        return
                    yield ": keep-alive\n\n"
                    continue
                if inbox.overflowed:
                    yield "event: resync\ndata: {}\n\n"
                    return
                version = json.loads(message)["version"]
                if version <= counter:
                    continue  # published before the snapshot was taken, so already in it
                yield f"event: change\nid: {version}\ndata: {message}\n\n"
        finally:
            hub.unsubscribe(event_id, inbox)

    return Response(
        events(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
