"""Door pages: the events to check in, and one event's scanner; admins undo a mistaken check-in."""

from datetime import timedelta

import sqlalchemy as sa
from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin.forms import ConfirmForm
from app.auth.decorators import admin_required, staff_required
from app.checkin import bp
from app.extensions import db
from app.models import Event, EventStatus, utcnow
from app.services import checkin, tickets
from app.services.errors import DomainError

# An event stays on the door's list this long after it began (late arrivals, long shows).
DOOR_OPEN_AFTER_START = timedelta(hours=12)


@bp.route("/checkin/")
@staff_required
def index():
    """The published events whose doors are open or will open: today's first."""
    now = utcnow()
    events = list(
        db.session.scalars(
            sa.select(Event)
            .where(Event.status == EventStatus.PUBLISHED, Event.date > now - DOOR_OPEN_AFTER_START)
            .order_by(Event.date)
        )
    )
    return render_template(
        "checkin/index.html", events=events, counts=checkin.counts_by_event([event.id for event in events])
    )


@bp.route("/checkin/<int:event_id>")
@staff_required
def scanner(event_id):
    """The door page of one event: camera scanning, typed codes, live counters, offline queue."""
    event = checkin.get_door_event(event_id)
    return render_template(
        "checkin/scanner.html",
        event=event,
        counts=checkin.counts(event.id),
        public_keys=tickets.public_keys(),
    )


@bp.route("/admin/events/<int:event_id>/checkins/<int:ticket_id>/undo", methods=["POST"])
@admin_required
def undo(event_id, ticket_id):
    """Take back a mistaken check-in (admins only); the ticket can be admitted again."""
    checkin.get_door_event(event_id)
    if ConfirmForm().validate_on_submit():
        try:
            ticket = checkin.undo_check_in(ticket_id, event_id, current_user, utcnow())
        except DomainError as error:
            flash(_("Not undone: %(reason)s", reason=error.message), "error")
        else:
            flash(_("The check-in of seat %(seat)s is undone.", seat=ticket.seat.label), "success")
    return redirect(url_for("admin.event_detail", event_id=event_id))
