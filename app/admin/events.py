"""Admin: events, their seat maps and life cycle (draft -> published -> cancelled)."""

import redis
from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin import bp
from app.admin.forms import CATEGORY_LINES, ConfirmForm, EventForm, event_form_data, new_event_data
from app.admin.listing import page_of, status_filter
from app.auth.decorators import admin_required
from app.models import EventStatus, utcnow
from app.services import cancellations, checkin, events, reports, waiting_room
from app.services.errors import DomainError
from app.templating import money

EVENTS_PER_PAGE = 25


def event_or_404(event_id: int):
    """The event, or the 404 page (a DomainError NotFound)."""
    return events.get_event(event_id)


@bp.route("/events")
@admin_required
def events_list():
    """All events, filtered by status and searched by name, with their sales."""
    status = status_filter(events.LIST_FILTERS)
    search = request.args.get("q", "").strip()
    page = page_of(events.list_query(status=status, search=search), EVENTS_PER_PAGE)
    sales = {row.event.id: row for row in reports.sales_by_event(page.items)}
    return render_template(
        "admin/events.html",
        page=page,
        sales=sales,
        status=status,
        search=search,
        filters=events.LIST_FILTERS,
        display_status=events.display_status,
    )


@bp.route("/events/new", methods=["GET", "POST"])
@admin_required
def event_new():
    """Create a draft event with its prices and seat map."""
    form = EventForm(data=new_event_data())
    if form.validate_on_submit():
        try:
            event = events.create_event(**vars(form.details()), actor=current_user)
        except DomainError as error:
            form.form_errors.append(error.message)
        else:
            flash(f"Created the draft '{event.name}' with {event.rows * event.columns} seats.", "success")
            return redirect(url_for("admin.event_detail", event_id=event.id))
    return render_event_form(form, event=None)


@bp.route("/events/<int:event_id>/edit", methods=["GET", "POST"])
@admin_required
def event_edit(event_id):
    """Edit an event; a new size regenerates its seat map (refused while seats are held or booked)."""
    event = event_or_404(event_id)
    if event.status == EventStatus.CANCELLED:
        flash("A cancelled event can no longer be edited.", "error")
        return redirect(url_for("admin.event_detail", event_id=event.id))
    form = EventForm(data=event_form_data(event), original_date=event.date, original_timezone=event.timezone)
    if form.validate_on_submit():
        try:
            events.update_event(event, form.details(), actor=current_user)
        except DomainError as error:
            form.form_errors.append(error.message)
        else:
            flash(f"Saved '{event.name}'.", "success")
            return redirect(url_for("admin.event_detail", event_id=event.id))
    return render_event_form(form, event=event)


def render_event_form(form: EventForm, event):
    # A form shown again after a POST was refused (some errors sit in category lines or the date).
    status = 400 if request.method == "POST" else 200
    return render_template("admin/event_form.html", form=form, event=event, category_lines=CATEGORY_LINES), status


@bp.route("/events/<int:event_id>")
@admin_required
def event_detail(event_id):
    """One event: its seat map with each seat's state, occupancy, sales and latest orders."""
    event = event_or_404(event_id)
    now = utcnow()
    return render_template(
        "admin/event_detail.html",
        event=event,
        now=now,
        status=events.display_status(event, now),
        seat_map=reports.seat_map(event, now),
        categories={category.id: category for category in event.price_categories},
        sales=reports.sales_by_event([event], now)[0],
        latest_orders=reports.latest_orders(10, event_id=event.id),
        form=ConfirmForm(),
        checkin_counts=checkin.counts(event.id),
        checkin_conflicts=checkin.conflicts(event.id),
        latest_check_ins=checkin.latest_check_ins(event.id),
        cancellation_run=cancellations.latest_run_of_event_or_none(event.id),
        open_orders=cancellations.open_orders_of_cancelled_event(event),
        room=waiting_room.stats(event, now) if event.waiting_room != "off" else None,
    )


@bp.route("/events/<int:event_id>/waiting-room/pause", methods=["POST"])
@admin_required
def event_waiting_room_pause(event_id):
    """Pause admissions from the waiting room: buyers keep their places."""
    return set_room_paused(event_id, paused=True)


@bp.route("/events/<int:event_id>/waiting-room/resume", methods=["POST"])
@admin_required
def event_waiting_room_resume(event_id):
    """Resume admissions from the waiting room."""
    return set_room_paused(event_id, paused=False)


def set_room_paused(event_id: int, *, paused: bool):
    event = event_or_404(event_id)
    if ConfirmForm().validate_on_submit():
        try:
            waiting_room.set_paused(event, paused)
        except DomainError as error:
            flash(error.message, "error")
        else:
            flash(_("Admissions paused.") if paused else _("Admissions resumed."), "success")
    return redirect(url_for("admin.event_detail", event_id=event.id))


@bp.route("/events/<int:event_id>/publish", methods=["POST"])
@admin_required
def event_publish(event_id):
    """Put a draft on sale."""
    event = event_or_404(event_id)
    if ConfirmForm().validate_on_submit():
        try:
            events.publish_event(event, actor=current_user)
        except DomainError as error:
            flash(f"Not published: {error.message}", "error")
        else:
            flash(f"'{event.name}' is published: buyers can book it now.", "success")
    return redirect(url_for("admin.event_detail", event_id=event.id))


@bp.route("/events/<int:event_id>/cancel", methods=["GET", "POST"])
@admin_required
def event_cancel(event_id):
    """Cancel an event after confirmation: holds released, bookings cancelled, paid ones refunded."""
    event = event_or_404(event_id)
    form = ConfirmForm()
    if event.status == EventStatus.CANCELLED:
        flash("This event is already cancelled.", "info")
        return redirect(url_for("admin.event_detail", event_id=event.id))
    if form.validate_on_submit():
        try:
            run = cancellations.start_event_cancellation(event, actor=current_user)
        except DomainError as error:
            flash(_("Not cancelled: %(reason)s", reason=error.message), "error")
        except redis.RedisError:
            flash(
                _(
                    "'%(name)s' is cancelled and its holds are released, but the background queue (Redis) is "
                    "unavailable: its orders are not cancelled yet. Retry from this page.",
                    name=event.name,
                ),
                "error",
            )
        else:
            flash(
                _(
                    "'%(name)s' is cancelled and its holds are released; %(n)s order(s) are being cancelled and "
                    "refunded in the background.",
                    name=event.name,
                    n=run.total,
                ),
                "success",
            )
        return redirect(url_for("admin.event_detail", event_id=event.id))
    affected = reports.live_order_counts(event)
    return render_template(
        "admin/confirm.html",
        form=form,
        title=f"Cancel “{event.name}”?",
        lines=[
            "Buyers can no longer book it, every hold is released and every booking is cancelled.",
            f"{affected['orders']} live order(s) will be cancelled; {affected['paid']} paid order(s) will be "
            f"refunded in full ({money(affected['amount'], event.currency)}).",
            "This cannot be undone.",
        ],
        submit_label="Cancel the event and refund",
        back_url=url_for("admin.event_detail", event_id=event.id),
    )


@bp.route("/events/<int:event_id>/delete", methods=["GET", "POST"])
@admin_required
def event_delete(event_id):
    """Delete an event nobody holds or has booked seats of, after confirmation (its history is kept)."""
    event = event_or_404(event_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            events.delete_event(event, actor=current_user)
        except DomainError as error:
            flash(f"Not deleted: {error.message}", "error")
            return redirect(url_for("admin.event_detail", event_id=event.id))
        flash(f"Deleted '{event.name}'.", "success")
        return redirect(url_for("admin.events_list"))
    return render_template(
        "admin/confirm.html",
        form=form,
        title=f"Delete “{event.name}”?",
        lines=[
            "The event disappears from every list; its past orders and payments stay on record.",
            "An event with held or booked seats cannot be deleted: cancel it first, which refunds its buyers.",
        ],
        submit_label="Delete the event",
        back_url=url_for("admin.event_detail", event_id=event.id),
    )
