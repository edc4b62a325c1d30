"""Admin: bookings per event and overall, an order's detail, cancellations with refunds, CSV export."""

from flask import Response, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin import bp
from app.admin.events import event_or_404
from app.admin.forms import CancelForm
from app.admin.listing import page_of, status_filter
from app.auth.decorators import admin_required
from app.models import BookingStatus, OrderStatus, utcnow
from app.services import booking as booking_service
from app.services import mail, reports
from app.services.errors import DomainError
from app.templating import money

BOOKINGS_PER_PAGE = 50


@bp.route("/bookings")
@bp.route("/events/<int:event_id>/bookings")
@admin_required
def bookings(event_id=None):
    """Bookings (one line per seat), overall or for one event, filtered by status."""
    event = event_or_404(event_id) if event_id is not None else None
    status = status_filter(BookingStatus.ALL)
    now = utcnow()
    query = reports.bookings_query(event_id=event_id, status=status or None, now=now)
    page = page_of(query, BOOKINGS_PER_PAGE)
    return render_template(
        "admin/bookings.html",
        page=page,
        event=event,
        status=status,
        statuses=BookingStatus.ALL,
        live=OrderStatus.LIVE,
        now=now,
    )


@bp.route("/events/<int:event_id>/bookings.csv")
@admin_required
def bookings_csv(event_id):
    """The event's bookings as a CSV download."""
    event = event_or_404(event_id)
    filename = f"stagepass-event-{event.id}-bookings-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        reports.bookings_csv(event),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@bp.route("/orders/<reference>")
@admin_required
def order_detail(reference):
    """One order: buyer, seats with their states, and the payment provider's ledger."""
    order = reports.find_order(reference)
    return render_template(
        "admin/order_detail.html", order=order, live=OrderStatus.LIVE, now=utcnow(), emails=mail.emails_for_order(order)
    )


@bp.route("/orders/<reference>/cancel", methods=["GET", "POST"])
@admin_required
def order_cancel(reference):
    """Cancel a whole order after confirmation, refunding what was paid and freeing its seats."""
    order = reports.find_order(reference)
    form = CancelForm()
    if form.validate_on_submit():
        try:
            cancelled = booking_service.cancel_order(order, **reason_of(form), actor=current_user)
        except DomainError as error:
            flash(f"Not cancelled: {error.message}", "error")
        else:
            flash(f"Order {reference} is cancelled{refund_note(cancelled)}; its seats are free again.", "success")
        return redirect(url_for("admin.order_detail", reference=reference))
    return render_template(
        "admin/confirm.html",
        form=form,
        title=f"Cancel order {order.reference}?",
        lines=[
            f"{order.user.email} loses all {len(order.bookings)} seat(s) of this order for “{order.event.name}”; "
            "the seats become free.",
            f"It is refunded in full ({money(order.total_amount - order.refunded_amount, order.event.currency)})."
            if order.payment_status == "paid"
            else "Nothing was paid, so nothing is refunded.",
        ],
        submit_label="Cancel the order",
        back_url=url_for("admin.order_detail", reference=order.reference),
    )


@bp.route("/bookings/<int:booking_id>/cancel", methods=["GET", "POST"])
@admin_required
def booking_cancel(booking_id):
    """Cancel one seat of an order after confirmation, refunding it if paid and freeing the seat."""
    booking = reports.find_booking(booking_id)
    reference = booking.order.reference
    form = CancelForm()
    if form.validate_on_submit():
        label = booking.seat.label
        try:
            cancelled = booking_service.cancel_booking(booking, **reason_of(form), actor=current_user)
        except DomainError as error:
            flash(f"Not cancelled: {error.message}", "error")
        else:
            refunded = " and refunded" if cancelled.payment_status == "refunded" else ""
            flash(f"Seat {label} of {reference} is cancelled{refunded}; the seat is free again.", "success")
        return redirect(url_for("admin.order_detail", reference=reference))
    paid = booking.payment_status == "paid"
    return render_template(
        "admin/confirm.html",
        form=form,
        title=f"Cancel seat {booking.seat.label} of {reference}?",
        lines=[
            f"{booking.user.email} loses seat {booking.seat.label} for “{booking.event.name}”; the seat becomes free.",
            f"The seat's {money(booking.total_amount, booking.event.currency)} is refunded."
            if paid
            else "Nothing was paid for it, so nothing is refunded.",
        ],
        submit_label="Cancel the seat",
        back_url=url_for("admin.order_detail", reference=reference),
    )


def reason_of(form: CancelForm) -> dict:
    return {"reason": form.reason.data} if form.reason.data else {}


def refund_note(order) -> str:
    return f" and {money(order.refunded_amount, order.event.currency)} refunded" if order.refunded_amount else ""
