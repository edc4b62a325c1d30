"""Admin: cancellation runs (an event's orders, or a selection) with their progress, and retries."""

import redis
import sqlalchemy as sa
from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from app.admin import bp
from app.admin.forms import ConfirmForm
from app.auth.decorators import admin_required
from app.extensions import db
from app.models import Order, OrderStatus
from app.routing import bounded_int
from app.services import cancellations
from app.services.errors import DomainError
from app.templating import money


def queue_down_message() -> str:
    return _(
        "The background queue (Redis) is unavailable, so nothing was queued. "
        "Nothing was refunded yet: try again in a moment."
    )


def run_or_404(run_id: str) -> cancellations.CancellationRun:
    return cancellations.get_run(run_id)


@bp.route("/cancellations/<run_id>")
@admin_required
def cancellation(run_id):
    """One cancellation run: its progress, and the orders whose cancellation failed."""
    run = run_or_404(run_id)
    failures = cancellations.failures_of_run(run)
    can_retry = run.is_over and any(row.order.status in OrderStatus.LIVE for row in failures)
    return render_template(
        "admin/cancellation.html", run=run, failures=failures, can_retry=can_retry, form=ConfirmForm()
    )


@bp.route("/cancellations/<run_id>/progress")
@admin_required
def cancellation_progress(run_id):
    """The run's progress as JSON, polled by its pages while the job runs."""
    run = cancellations.find_run(run_id)
    if run is None:
        return jsonify(error=_("No such cancellation run."), code="run_not_found"), 404
    return jsonify(**run.progress(), refunded_text=money(run.refunded_amount))


@bp.route("/cancellations/<run_id>/retry", methods=["POST"])
@admin_required
def cancellation_retry(run_id):
    """Queue a new run over this run's failed orders that are still live."""
    run = run_or_404(run_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for("admin.cancellation", run_id=run.id))
    return _started(
        lambda: cancellations.retry_run(run, actor=current_user), url_for("admin.cancellation", run_id=run.id)
    )


@bp.route("/events/<int:event_id>/cancel/retry", methods=["POST"])
@admin_required
def event_cancel_retry(event_id):
    """Queue a new run over the orders of a cancelled event that are still live."""
    from app.admin.events import event_or_404

    event = event_or_404(event_id)
    back = url_for("admin.event_detail", event_id=event.id)
    if not ConfirmForm().validate_on_submit():
        return redirect(back)
    return _started(lambda: cancellations.retry_event(event, actor=current_user), back, stay=True)


@bp.route("/bookings/cancel-orders", methods=["POST"])
@admin_required
def orders_cancel():
    """Cancel and refund the orders selected on the bookings list, after confirmation, as a job."""
    form = ConfirmForm()
    back = request.form.get("back", "")
    back = back if back.startswith("/admin/") and not back.startswith("//") else url_for("admin.bookings")
    order_ids = sorted({number for number in map(bounded_int_or_none, request.form.getlist("order_id")) if number})
    if not form.validate_on_submit():
        return redirect(back)
    if not order_ids:
        flash(_("Select at least one order to cancel."), "error")
        return redirect(back)
    if request.form.get("confirmed") != "yes":
        orders = db.session.scalars(
            sa.select(Order)
            .where(Order.id.in_(order_ids), Order.status.in_(OrderStatus.LIVE))
            .order_by(Order.id)
            .limit(cancellations.MAX_SELECTED_ORDERS)
        ).all()
        refund = sum((o.total_amount - o.refunded_amount for o in orders if o.payment_status == "paid"), 0)
        return render_template("admin/orders_cancel.html", form=form, orders=orders, refund=refund, back=back)
    return _started(lambda: cancellations.start_order_cancellation(order_ids, actor=current_user), back)


def bounded_int_or_none(text: str) -> int | None:
    try:
        return bounded_int(text)
    except (TypeError, ValueError):
        return None


def _started(start, back: str, *, stay: bool = False):
    """Start a run and go to its page (or stay on `back`); a refusal or a dead queue is said on `back`."""
    try:
        run = start()
    except DomainError as error:
        flash(error.message, "error")
        return redirect(back)
    except redis.RedisError:
        flash(queue_down_message(), "error")
        return redirect(back)
    flash(_("Cancelling %(n)s order(s) in the background.", n=run.total), "success")
    return redirect(back if stay else url_for("admin.cancellation", run_id=run.id))
