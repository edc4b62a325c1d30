"""JSON endpoints of the door page: check a ticket in, and the live counters."""

from functools import wraps

from flask import abort, jsonify
from flask_babel import gettext as _
from flask_login import current_user

from app import limits
from app.booking.api import json_body
from app.checkin import bp
from app.models import utcnow
from app.services import checkin
from app.services.errors import InvalidRequest


def staff_api(view):
    """Door staff and admins only, answered in JSON: 401 for guests (the page sends them to log
    in), 403 for other accounts."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return jsonify(error=_("Log in to check tickets in."), code="login_required"), 401
        if not current_user.can_check_in:
            abort(403, _("Only door staff and admins can check tickets in."))
        return view(*args, **kwargs)

    return wrapped


@bp.get("/api/events/<int:event_id>/checkins/counts")
@staff_api
def checkin_counts(event_id):
    """The event's counters: tickets checked in and sold."""
    checkin.require_door(event_id)
    return jsonify(counts=checkin.counts(event_id))


@bp.post("/api/events/<int:event_id>/checkins")
@staff_api
@limits.apply(limits.checkin)
def check_in(event_id):
    """Check in a scanned payload or typed code: 200 admitted, 409/410/422/404 with the reason."""
    payload = json_body()
    if not isinstance(payload, dict) or not isinstance(payload.get("code"), str):
        raise InvalidRequest(_('Send JSON like {"code": "<scanned or typed code>", "door": "Main entrance"}.'))
    offline = payload.get("offline", False)
    if not isinstance(offline, bool):
        raise InvalidRequest(_("offline must be true or false."))
    scan = checkin.check_in(
        payload["code"],
        event_id,
        payload.get("door"),
        current_user,
        utcnow(),
        scanned_at=checkin.parse_scanned_at(payload.get("scanned_at")),
        offline=offline,
    )
    return jsonify(scan_json(scan, event_id)), scan.status


def scan_json(scan: checkin.Scan, event_id: int) -> dict:
    """The answer the door shows: result, a sentence, the seat when known, and the counters."""
    body = {"result": scan.result, "message": scan.message, "conflict": scan.conflict, **scan.details}
    if scan.result != checkin.ADMITTED:
        body |= {"error": scan.message, "code": scan.result}  # the API's usual error shape too
    if scan.seat is not None:
        body["seat"], body["category"] = scan.seat, scan.category
    if scan.checked_in_at is not None:
        body["checked_in_at"] = scan.checked_in_at.isoformat() + "Z"
        body["door"] = scan.door
    body["counts"] = scan.counts if scan.counts is not None else checkin.counts(event_id)
    return body
