"""Admin: an event's waiting list (queue, counts, skip, end an offer, switch it off, CSV)."""

from flask import Response, abort, flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin import bp
from app.admin.events import event_or_404
from app.admin.forms import ConfirmForm
from app.auth.decorators import admin_required
from app.models import utcnow
from app.services import waitlist
from app.services.errors import DomainError


@bp.app_template_global()
def admin_waitlist(event):
    """What the admin event page shows of the list."""
    now = utcnow()
    entries = waitlist.entries_for_admin(event)
    return {
        "entries": entries,
        "counts": waitlist.counts(event, now),
        "is_open": waitlist.is_list_open(event.id),
        "now": now,
        "form": ConfirmForm(),
    }


def _back(event_id):
    return redirect(url_for("admin.event_detail", event_id=event_id) + "#waitlist")


def _confirmed():
    if not ConfirmForm().validate_on_submit():
        abort(400, _("The form was incomplete; please try again."))


@bp.route("/events/<int:event_id>/waitlist/<int:entry_id>/skip", methods=["POST"])
@admin_required
def waitlist_skip(event_id, entry_id):
    """Take a waiting entry off the list."""
    return _change_entry(event_id, entry_id, waitlist.skip, _("The entry was taken off the waiting list."))


@bp.route("/events/<int:event_id>/waitlist/<int:entry_id>/end-offer", methods=["POST"])
@admin_required
def waitlist_end_offer(event_id, entry_id):
    """End an open offer early: its seats go to the next entry, or back on sale."""
    done = _("The offer was ended; its seats went on to the next entry or back on sale.")
    return _change_entry(event_id, entry_id, waitlist.end_offer, done)


def _change_entry(event_id: int, entry_id: int, change, done: str):
    """A confirmed admin action on one entry of the event's list: `change(entry, actor=...)`."""
    event = event_or_404(event_id)
    _confirmed()
    entry = waitlist.find_entry(entry_id, event)
    try:
        change(entry, actor=current_user)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(done, "success")
    return _back(event_id)


@bp.route("/events/<int:event_id>/waitlist/<state>", methods=["POST"])
@admin_required
def waitlist_switch(event_id, state):
    """Let the list take entries (open) or not (closed)."""
    event = event_or_404(event_id)
    if state not in ("open", "closed"):
        abort(404)
    _confirmed()
    waitlist.set_open(event, state == "open", actor=current_user)
    flash(_("The waiting list is open.") if state == "open" else _("The waiting list is closed."), "success")
    return _back(event_id)


@bp.route("/events/<int:event_id>/waitlist.csv")
@admin_required
def waitlist_csv(event_id):
    """The event's waiting list as CSV."""
    event = event_or_404(event_id)
    return Response(
        waitlist.entries_csv(event),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=waitlist-event-{event.id}.csv"},
    )
