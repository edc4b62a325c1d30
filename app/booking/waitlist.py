"""Buyer pages of the waiting list: join, leave, accept or decline an offer; extending a hold."""

from flask import abort, flash, make_response, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from app.auth.decorators import redirect_admins
from app.booking import bp, routes
from app.booking.api import visible_event
from app.booking.forms import ButtonForm, WaitlistForm
from app.models import utcnow
from app.services import hold_extension, waitlist
from app.services.errors import DomainError


@bp.app_template_global()
def buyer_waitlist(event):
    """What the event page shows about the list: the buyer's entry and place, or the join form."""
    now = utcnow()
    entry = None
    if current_user.is_authenticated and not current_user.is_admin:
        entry = waitlist.open_entry_for(current_user, event)
        if entry is not None and entry.status == "waiting" and waitlist.settle_lapsed_holds([event.id], now):
            entry = waitlist.open_entry_for(current_user, event)  # the run-out holds may be offered to us now
    return {
        "entry": entry,
        "position": waitlist.position(entry) if entry is not None and entry.status == "waiting" else None,
        "can_join": entry is None and waitlist.can_join(event, now),
        "form": WaitlistForm(),
        "button": ButtonForm(),
        "now": now,
    }


@bp.app_template_global()
def my_waitlist_entries():
    """The logged-in buyer's waiting list entries, for My bookings."""
    entries = waitlist.entries_of(current_user)
    if waitlist.settle_lapsed_holds([e.event_id for e in entries if e.status == "waiting"]):
        entries = waitlist.entries_of(current_user)  # run-out holds may have become offers
    return {
        "entries": entries,
        "positions": {e.id: waitlist.position(e) for e in entries if e.status == "waiting"},
        "button": ButtonForm(),
        "now": utcnow(),
    }


@bp.app_template_global()
def hold_can_be_extended(order):
    """Whether the checkout offers the one extension of its hold."""
    return hold_extension.can_extend(order)


def _refused(error: DomainError, event_id: int):
    """The event page again, with the reason at the top and the error's status."""
    flash(error.message, "error")
    return make_response(routes.event_detail(event_id), error.status)


@bp.route("/events/<int:event_id>/waitlist", methods=["POST"])
@login_required
@redirect_admins
def waitlist_join(event_id):
    """Join the event's waiting list."""
    event = visible_event(event_id)
    form = WaitlistForm()
    if not form.validate_on_submit():
        abort(400, _("The form was incomplete; please try again."))
    try:
        entry = waitlist.join(
            current_user,
            event,
            party_size=form.party_size.data,
            category=form.category.data,
            together=form.together.data,
        )
    except DomainError as error:
        return _refused(error, event_id)
    flash(_("You are on the waiting list, number %(place)s in line.", place=waitlist.position(entry)), "success")
    return redirect(url_for("booking.event_detail", event_id=event_id))


def _entry_action(entry_id):
    if not ButtonForm().validate_on_submit():
        abort(400, _("The form was incomplete; please try again."))
    return waitlist.find_entry_for_user(entry_id, current_user)


@bp.route("/waitlist/<int:entry_id>/leave", methods=["POST"])
@login_required
@redirect_admins
def waitlist_leave(entry_id):
    """Leave a waiting list (an open offer is declined)."""
    entry = _entry_action(entry_id)
    try:
        waitlist.leave(entry, user=current_user)
    except DomainError as error:
        return _refused(error, entry.event_id)
    flash(_("You left the waiting list."), "info")
    return redirect(url_for("booking.my_bookings"))


@bp.route("/waitlist/<int:entry_id>/accept", methods=["POST"])
@login_required
@redirect_admins
def waitlist_accept(entry_id):
    """Take an offer: straight to the checkout of the offered seats."""
    entry = _entry_action(entry_id)
    try:
        order = waitlist.accept(entry, user=current_user)
    except DomainError as error:
        return _refused(error, entry.event_id)
    return redirect(url_for("booking.checkout", reference=order.reference))


@bp.route("/waitlist/<int:entry_id>/decline", methods=["POST"])
@login_required
@redirect_admins
def waitlist_decline(entry_id):
    """Turn an offer down: its seats go to the next person waiting."""
    entry = _entry_action(entry_id)
    try:
        waitlist.decline(entry, user=current_user)
    except DomainError as error:
        return _refused(error, entry.event_id)
    flash(_("You declined the offer; the seats go to the next person waiting."), "info")
    return redirect(url_for("booking.my_bookings"))


@bp.route("/orders/<reference>/extend", methods=["POST"])
@login_required
@redirect_admins
def extend_hold(reference):
    """Extend a running hold once (the server decides whether it may)."""
    order = routes.own_order(reference)
    if not ButtonForm().validate_on_submit():
        abort(400, _("The form was incomplete; please try again."))
    try:
        hold_extension.extend_hold(order, user=current_user)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(_("Your seats are held for %(n)s more seconds.", n=hold_extension.extension_seconds()), "success")
    return redirect(url_for("booking.checkout", reference=order.reference))
