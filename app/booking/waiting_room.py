"""The waiting room's pages: the room itself, its JSON status, its live stream, and the way in."""

import json
import queue
import time

from flask import current_app, flash, jsonify, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.decorators import redirect_admins
from app.booking import bp
from app.booking.api import visible_event
from app.extensions import db
from app.identity import SignedIn, signed_in_user_id
from app.limits import client_address
from app.models import utcnow
from app.services import live, waiting_room
from app.services.errors import DomainError

STREAM_MAX_SECONDS = 600  # the browser reconnects; a stream never outlives a deploy for long


def _event_url(event_id: int) -> str:
    return url_for("booking.event_detail", event_id=event_id)


def _admit(response, event, place):
    waiting_room.set_admission_cookie(response, current_user.id, event.id, place.deadline_ms)
    return response


@bp.route("/events/<int:event_id>/waiting-room", endpoint="waiting_room")
@login_required
@redirect_admins
def waiting_room_page(event_id):
    """Take a place in the event's waiting room and watch it move."""
    event = visible_event(event_id)
    now = utcnow()
    try:
        place = waiting_room.join(current_user, event, ip=client_address(), now=now)
    except DomainError as error:
        flash(error.message, "error")
        return redirect(url_for("booking.events"))
    if place.state == "open":
        return redirect(_event_url(event.id))
    if place.state == "admitted":
        return _admit(redirect(_event_url(event.id)), event, place)
    return render_template("booking/waiting_room.html", event=event, place=place, status=place.to_json(now))


# The event as the room needs it, per process for a second: thousands of buyers ask for their
# place every few seconds, and neither that nor who they are needs a database connection.
EVENT_CACHE_SECONDS = 1.0
_events: dict[int, tuple[float, object]] = {}


def room_event(event_id: int):
    """The visible event (detached, read-only), from this process's cache while it is fresh."""
    cached = _events.get(event_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    event = visible_event(event_id)
    db.session.expunge(event)
    _events[event_id] = (time.monotonic() + EVENT_CACHE_SECONDS, event)
    return event


def forget_room_events() -> None:
    """Drop this process's cached events (a test starts from fresh data)."""
    _events.clear()


@bp.get("/api/events/<int:event_id>/waiting-room")
def waiting_room_status(event_id):
    """Join (or keep) a place and say where the buyer stands; once admitted, the admission cookie."""
    event = room_event(event_id)
    user_id = signed_in_user_id()
    if user_id is None:
        login_url = url_for("auth.login", next=url_for("booking.waiting_room", event_id=event.id))
        return jsonify(error=_("Log in to join the waiting room."), code="login_required", login_url=login_url), 401
    now = utcnow()
    place = waiting_room.join(SignedIn(user_id), event, ip=client_address(), now=now)
    db.session.remove()  # a room step may have counted free seats: give the connection back now
    response = jsonify(**place.to_json(now), seat_map_url=_event_url(event.id))
    if place.state == "admitted":
        waiting_room.set_admission_cookie(response, user_id, event.id, place.deadline_ms)
    return response


@bp.get("/events/<int:event_id>/waiting-room/enter")
@login_required
@redirect_admins
def waiting_room_enter(event_id):
    """The way from the room to the seat map: admitted buyers get their admission, others go back."""
    event = visible_event(event_id)
    place = waiting_room.place_of(current_user.id, event)
    if place.state == "admitted":
        return _admit(redirect(_event_url(event.id)), event, place)
    if place.state == "open":
        return redirect(_event_url(event.id))
    return redirect(url_for("booking.waiting_room", event_id=event.id))


@bp.get("/events/<int:event_id>/waiting-room/stream")
def waiting_room_stream(event_id):
    """The buyer's place (`place`), pushed whenever it changes; `done` when the wait is over:
    admitted, the room opened, or the place was lost (the page joins again). The room publishes
    whom it admits and the live hub wakes this stream at once; besides, it looks at the place as
    often as the page would poll, with a heartbeat comment in between. Thousands open at once in
    an on-sale rush: who the buyer is comes from the signed session, the event from the cache."""
    user_id = signed_in_user_id()
    if user_id is None:
        return current_app.login_manager.unauthorized()
    room_event(event_id)  # 404 unless the event is visible
    app = current_app._get_current_object()
    heartbeat = app.config["SSE_HEARTBEAT_SECONDS"]
    hub = live.hub()
    db.session.remove()  # no database connection is held while the stream waits

    def place_now() -> dict:
        with app.app_context():
            try:
                event = room_event(event_id)
                now = utcnow()
                return waiting_room.place_of(user_id, event, now).to_json(now)
            finally:
                db.session.remove()

    def events():
        turn = hub.await_turn(event_id, user_id)
        try:
            yield "retry: 3000\n\n"
            last, look_at = None, 0.0
            started = time.monotonic()
            while time.monotonic() - started < STREAM_MAX_SECONDS:
                if time.monotonic() < look_at:
                    yield ": still waiting\n\n"
                else:
                    status = place_now()
                    if status["state"] in ("admitted", "open", "none"):
                        yield f"event: done\ndata: {json.dumps(status)}\n\n"  # the page acts on status.state
                        return
                    data = json.dumps(status)
                    yield f"event: place\ndata: {data}\n\n" if data != last else ": still waiting\n\n"
                    last = data
                    look_at = time.monotonic() + status["poll_after_ms"] / 1000
                try:
                    turn.get(timeout=max(0.0, min(heartbeat, look_at - time.monotonic())))
                except queue.Empty:
                    continue
                look_at = 0.0  # admitted, the room opened, or the hub lost Redis: look now
        finally:
            hub.stop_awaiting(event_id, user_id, turn)

    response = make_response(events())
    response.mimetype = "text/event-stream"
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def admission_redirect(event):
    """For pages: the way to the room when it is active and the buyer has no admission, else None.
    With nothing left to sell the event page shows (its waiting list); holding still needs an admission."""
    if request.method == "HEAD":
        return None
    try:
        waiting_room.require_admission(current_user, event)
    except waiting_room.QueueRequired:
        if waiting_room.nothing_to_sell(event):
            return None
        return redirect(url_for("booking.waiting_room", event_id=event.id))
    return None
