"""JSON endpoints the seat map calls: its seat states and holds."""

import time

from flask import abort, jsonify, make_response, request, url_for
from flask_babel import gettext as _

from app import limits
from app.booking import bp
from app.extensions import db
from app.identity import SignedIn, signed_in_user_id
from app.models import Event, EventStatus, utcnow
from app.services import booking, seatmap, waiting_room
from app.services.errors import InvalidRequest


def visible_event(event_id: int) -> Event:
    """A published or cancelled event buyers may look at; drafts and deleted ones are 404."""
    event = db.session.get(Event, event_id)
    _refuse_unless_visible(event)
    return event


def _refuse_unless_visible(event: Event | None) -> None:
    if event is None or event.is_deleted or event.status == EventStatus.DRAFT:
        abort(404, _("No such event."))


@bp.get("/api/events/<int:event_id>/seats")
def seat_states(event_id):
    """The event's seat states, compactly; 304 when the caller already has this version."""
    rendered = seatmap.rendered_map(event_id, load_event=visible_event)
    if rendered.etag in request.if_none_match:
        response = make_response("", 304)
    else:
        response = make_response(rendered.body)
        response.mimetype = "application/json"
    response.set_etag(rendered.etag)
    # Browsers must ask every time; the ETag makes an unchanged answer a bodiless 304.
    response.headers["Cache-Control"] = "no-cache"
    next_change = seatmap.ms_until(rendered.next_change, utcnow())
    if next_change is not None:
        response.headers["X-Next-Change-In-Ms"] = str(next_change)  # a hold runs out or sales end
    return response


@bp.post("/api/events/<int:event_id>/holds")
@limits.apply(limits.hold)
def hold_seats(event_id):
    """Hold the chosen seats for the logged-in buyer: 201 with the checkout URL, or why not."""
    started = time.perf_counter()
    buyer_id = signed_in_user_id()  # the hold itself reads the account: no separate load
    if buyer_id is None:
        return _log_in_first(event_id)
    payload = json_body()
    if not isinstance(payload, dict) or not isinstance(payload.get("seat_ids"), list):
        raise InvalidRequest('Send JSON like {"seat_ids": [1, 2]}.')
    buyer = SignedIn(buyer_id)
    gate = HoldGate(buyer)
    try:
        placed = booking.place_hold(buyer, event_id, payload["seat_ids"], admit=gate)
    except booking.NotSignedIn:
        return _log_in_first(event_id)
    response = make_response(
        jsonify(
            reference=placed.reference,
            expires_at=placed.hold_expires_at.isoformat() + "Z",
            total=f"{placed.total_amount:.2f}",
            seat_ids=sorted(int(seat_id) for seat_id in payload["seat_ids"]),
            checkout_url=url_for("booking.checkout", reference=placed.reference),
        ),
        201,
    )
    if gate.room_in_front:
        waiting_room.note_hold(response, buyer_id, event_id, placed.hold_expires_at, time.perf_counter() - started)
    return response


def _log_in_first(event_id: int):
    login_url = url_for("auth.login", next=url_for("booking.event_detail", event_id=event_id))
    return jsonify(error=_("Log in to hold seats."), code="login_required", login_url=login_url), 401


class HoldGate:
    """What stands between a buyer and a hold, asked by booking.hold under the event's lock: the
    event must be one buyers may see (404 otherwise), and an active waiting room wants an admission."""

    def __init__(self, buyer):
        self.buyer, self.room_in_front = buyer, False

    def __call__(self, event: Event | None) -> None:
        _refuse_unless_visible(event)
        now = utcnow()
        if event.is_on_sale(now):  # else the hold itself says why not (not on sale yet, ended)
            waiting_room.require_admission(self.buyer, event, now)
        self.room_in_front = waiting_room.configured_active(event, now)


def json_body():
    """The request's JSON, or None when it is not JSON (silent=True covers bad syntax, not JSON
    nested deeper than the parser's recursion limit: a 1 KB body of "[" raised RecursionError)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None
