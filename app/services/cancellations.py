"""Cancelling many orders at once: an event's, or a selection from the bookings list.

Cancelling an event takes two steps. One unit of work marks the event cancelled (no more sales)
and releases its holds. Then a background job (app/jobs.py) cancels and refunds the remaining
orders one at a time with booking.cancel_order, each in its own unit of work: a refund the
provider refuses leaves that one order live, listed with the provider's reason to retry, and never
undoes the refunds already made. A selection of orders is cancelled by the same job.

The job re-checks each order under its lock (cancel_order locks the order and its seats and
refuses one that is no longer live): an order someone else cancelled meanwhile is skipped, never
refunded twice. Progress lives in Redis as a CancellationRun, written only by the job that runs
it; the admin pages poll it. The truth of what is left (the orders still live) is in the database,
so a retry works even after Redis lost the run.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

import redis
import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db, get_redis, redis_call
from app.models import AuditEntry, Event, EventStatus, Order, OrderStatus, User, utcnow
from app.services import audit, booking, locking, seat_changes
from app.services.errors import DomainError, InvalidRequest, NotFound
from app.services.transactions import run_unit_of_work

log = logging.getLogger(__name__)

RUN_KEY = "stagepass:cancellation-run:{}"
EVENT_RUN_KEY = "stagepass:cancellation-run:event:{}"
RUN_TTL_SECONDS = 30 * 24 * 3600
RUN_ID = re.compile(r"^[0-9a-f]{16}$")
JOB_LABEL = audit.job_label("cancel-orders")
EVENT_REASON = "The event was cancelled."
MAX_SELECTED_ORDERS = 500


class EventAlreadyCancelledError(DomainError):
    """This event is already cancelled."""

    code = "already_cancelled"
    status = 409


class RunNotFound(NotFound):
    """No such cancellation run."""

    code = "run_not_found"


class RunState:
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    # Never stored: a run not finished whose job is gone or failed (the worker died, Redis lost it).
    INTERRUPTED = "interrupted"


@dataclass
class CancellationRun:
    """The progress of one job cancelling orders, as the admin pages show it."""

    id: str
    order_ids: list[int]
    requested_by: str
    event_id: int | None = None
    state: str = RunState.QUEUED
    done: int = 0
    cancelled: int = 0
    skipped: int = 0
    refunded: str = "0.00"
    # order id (as text: JSON keys) -> {"reference": ..., "reason": the provider's or the rule's words}
    failed: dict[str, dict] = field(default_factory=dict)
    created_at: str = ""
    finished_at: str | None = None

    @property
    def total(self) -> int:
        return len(self.order_ids)

    @property
    def refunded_amount(self) -> Decimal:
        return Decimal(self.refunded)

    @property
    def is_finished(self) -> bool:
        return self.state == RunState.FINISHED

    @property
    def is_over(self) -> bool:
        """Nothing will change it any more: finished, or interrupted (then its orders can be retried)."""
        return self.state in (RunState.FINISHED, RunState.INTERRUPTED)

    def progress(self) -> dict:
        """What the progress endpoint answers."""
        return {
            "id": self.id,
            "state": self.state,
            "total": self.total,
            "done": self.done,
            "cancelled": self.cancelled,
            "skipped": self.skipped,
            "failed": len(self.failed),
            "refunded": self.refunded,
            "finished": self.is_over,
        }


# --- runs in Redis ----------------------------------------------------------------------------


def save_run(run: CancellationRun) -> None:
    get_redis().set(RUN_KEY.format(run.id), json.dumps(asdict(run)), ex=RUN_TTL_SECONDS)


def find_run(run_id: str) -> CancellationRun | None:
    """The run with this id, or None (unknown, expired, or a malformed id)."""
    if not RUN_ID.match(run_id or ""):
        return None
    stored = get_redis().get(RUN_KEY.format(run_id))
    if stored is None:
        return None
    run = CancellationRun(**json.loads(stored))
    if not run.is_finished and _job_has_died(run.id):
        run.state = RunState.INTERRUPTED
    return run


def _job_has_died(run_id: str) -> bool:
    from app import jobs

    return jobs.cancellation_job_status(get_redis(), run_id) in jobs.DEAD_JOB_STATES


def get_run(run_id: str) -> CancellationRun:
    """The run with this id, or RunNotFound."""
    run = find_run(run_id)
    if run is None:
        raise RunNotFound(_("No such cancellation run (runs are kept for 30 days)."))
    return run


def latest_run_of_event(event_id: int) -> CancellationRun | None:
    """The newest run that cancelled this event's orders, if Redis still has it."""
    run_id = get_redis().get(EVENT_RUN_KEY.format(event_id))
    return None if run_id is None else find_run(run_id.decode())


def latest_run_of_event_or_none(event_id: int) -> CancellationRun | None:
    """As latest_run_of_event, or None while Redis is unreachable (the page still shows what is left)."""
    return redis_call(lambda _client: latest_run_of_event(event_id))


def _new_run(order_ids: list[int], requested_by: User, event_id: int | None) -> CancellationRun:
    run = CancellationRun(
        id=secrets.token_hex(8),
        order_ids=order_ids,
        requested_by=requested_by.email if requested_by is not None else audit.SYSTEM_LABEL,
        event_id=event_id,
        created_at=utcnow().isoformat(),
    )
    save_run(run)
    if event_id is not None:
        get_redis().set(EVENT_RUN_KEY.format(event_id), run.id, ex=RUN_TTL_SECONDS)
    return run


def _enqueue(run: CancellationRun) -> CancellationRun:
    from app import jobs

    try:
        jobs.enqueue_cancellation(get_redis(), run.id)
    except redis.RedisError:
        redis_call(lambda client: _forget_run(client, run))  # no job will ever run it
        raise
    return run


def _forget_run(client, run: CancellationRun) -> None:
    client.delete(RUN_KEY.format(run.id))
    if run.event_id is not None and client.get(EVENT_RUN_KEY.format(run.event_id)) == run.id.encode():
        client.delete(EVENT_RUN_KEY.format(run.event_id))


# --- starting -----------------------------------------------------------------------------------


def _live_order_ids(*conditions) -> list[int]:
    query = sa.select(Order.id).where(Order.status.in_(OrderStatus.LIVE), *conditions).order_by(Order.id)
    return list(db.session.scalars(query))


def mark_event_cancelled(event: Event, *, actor=None, now: datetime | None = None) -> list[int]:
    """Step one (committed): the event cancelled and its holds released; the ids of the orders left to cancel."""
    event_id = event.id

    def work():
        moment = now or utcnow()
        locked = locking.lock_event(event_id)
        if locked is None:
            raise NotFound(_("No such event."))
        if locked.status == EventStatus.CANCELLED:
            raise EventAlreadyCancelledError(_("This event is already cancelled."))
        locked.status = EventStatus.CANCELLED
        locked.cancelled_at = moment
        seat_changes.mark_changed(event_id, [])
        released = booking.cancel_pending_orders_of_event(event_id, moment, EVENT_REASON)
        for order in released:
            audit.record(
                "order.cancelled",
                actor=actor,
                subject=order,
                data={"reference": order.reference, "was": OrderStatus.PENDING, "reason": EVENT_REASON},
                now=moment,
            )
        remaining = _live_order_ids(Order.event_id == event_id)
        audit.record(
            "event.cancelled",
            actor=actor,
            subject=locked,
            data={"holds_released": len(released), "orders_to_cancel": len(remaining)},
            now=moment,
        )
        return remaining

    return run_unit_of_work(work)


def start_event_cancellation(event: Event, *, actor=None, now: datetime | None = None) -> CancellationRun:
    """Cancel the event now and queue the job that cancels and refunds its orders.

    Raises redis errors after the event is cancelled if the job cannot be queued: the orders stay
    live and the event page offers to retry.
    """
    order_ids = mark_event_cancelled(event, actor=actor, now=now)
    return _enqueue(_new_run(order_ids, actor, event.id))


def retry_event(event: Event, *, actor=None) -> CancellationRun:
    """Queue a new run over the orders of a cancelled event that are still live (refunds that failed)."""
    if event.status != EventStatus.CANCELLED:
        raise InvalidRequest(_("Only the orders of a cancelled event can be retried; cancel the event first."))
    working = latest_run_of_event_or_none(event.id)
    if working is not None and not working.is_over:
        raise InvalidRequest(_("A run is still cancelling this event's orders; retry once it has finished."))
    order_ids = _live_order_ids(Order.event_id == event.id)
    if not order_ids:
        raise InvalidRequest(_("Every order of this event is already cancelled."))
    return _enqueue(_new_run(order_ids, actor, event.id))


def start_order_cancellation(order_ids, *, actor=None) -> CancellationRun:
    """Queue a run that cancels (and refunds) these orders; those no longer live are left out."""
    wanted = sorted({int(order_id) for order_id in order_ids})
    if not wanted:
        raise InvalidRequest(_("Select at least one order to cancel."))
    if len(wanted) > MAX_SELECTED_ORDERS:
        raise InvalidRequest(_("Select at most %(n)s orders at a time.", n=MAX_SELECTED_ORDERS))
    live = _live_order_ids(Order.id.in_(wanted))
    if not live:
        raise InvalidRequest(_("None of the selected orders is live any more."))
    return _enqueue(_new_run(live, actor, None))


def retry_run(run: CancellationRun, *, actor=None) -> CancellationRun:
    """Queue a new run over this run's orders that are still live (failed, or never reached)."""
    if not run.is_over:
        raise InvalidRequest(_("This run is still working; retry once it has finished."))
    live = _live_order_ids(Order.id.in_(run.order_ids))
    if not live:
        raise InvalidRequest(_("Every order of this run is already cancelled."))
    return _enqueue(_new_run(live, actor, run.event_id))


# --- the job ------------------------------------------------------------------------------------


def run_cancellation(run_id: str) -> CancellationRun:
    """Job: cancel and refund each order of the run in its own unit of work, saving progress after each."""
    run = get_run(run_id)
    run.state = RunState.RUNNING
    save_run(run)
    for order_id in run.order_ids[run.done :]:  # a run restarted after a crash goes on where it stopped
        _cancel_one(run, order_id)
        run.done += 1
        save_run(run)
    run.state = RunState.FINISHED
    run.finished_at = utcnow().isoformat()
    save_run(run)
    return run


def _cancel_one(run: CancellationRun, order_id: int) -> None:
    order = db.session.get(Order, order_id)
    if order is None:
        run.skipped += 1
        return
    refunded_before, reference = order.refunded_amount, order.reference
    reason = EVENT_REASON if run.event_id is not None else "Cancelled by the organiser."
    try:
        cancelled = booking.cancel_order(order, reason=reason, actor_label=f"{JOB_LABEL} for {run.requested_by}")
    except booking.OrderNotPending:
        run.skipped += 1  # cancelled by someone else since the run was queued: seen under the lock
        return
    except DomainError as error:
        _record_failure(run, order_id, reference, error.message)
        return
    except Exception:  # one broken order must not stop the others; its reason is on the page
        log.exception("cancellation run %s: order %s failed", run.id, reference)
        _record_failure(run, order_id, reference, _("Unexpected error; see the server log."))
        return
    run.cancelled += 1
    run.refunded = str(run.refunded_amount + (cancelled.refunded_amount - refunded_before))


def _record_failure(run: CancellationRun, order_id: int, reference: str, reason: str) -> None:
    run.failed[str(order_id)] = {"reference": reference, "reason": reason}

    def work():
        order = db.session.get(Order, order_id)
        audit.record(
            "order.refund_failed" if order.payment_status == "paid" else "order.cancel_failed",
            actor_label=f"{JOB_LABEL} for {run.requested_by}",
            subject=order,
            data={"reference": reference, "reason": reason, "run": run.id},
        )

    try:
        run_unit_of_work(work)
    except Exception:  # the run still lists the failure; the trail line is best effort here
        log.exception("cancellation run %s: could not record the failure of %s", run.id, reference)


# --- reading ------------------------------------------------------------------------------------


@dataclass
class OpenOrder:
    """An order still live after its event was cancelled, and why its last attempt failed."""

    order: Order
    reason: str | None


def open_orders_of_cancelled_event(event: Event) -> list[OpenOrder]:
    """The orders of a cancelled event still live, each with the reason its last cancel failed."""
    if event.status != EventStatus.CANCELLED:
        return []
    orders = db.session.scalars(
        sa.select(Order)
        .where(Order.event_id == event.id, Order.status.in_(OrderStatus.LIVE))
        .order_by(Order.id)
        .limit(MAX_SELECTED_ORDERS)
    ).all()
    reasons = last_failure_reasons([order.id for order in orders])
    return [OpenOrder(order, reasons.get(order.id)) for order in orders]


def last_failure_reasons(order_ids: list[int]) -> dict[int, str]:
    """The reason of the latest failed cancel or refund of each order, read from the audit trail."""
    if not order_ids:
        return {}
    entries = db.session.scalars(
        sa.select(AuditEntry)
        .where(
            AuditEntry.subject_type == "order",
            AuditEntry.subject_id.in_(order_ids),
            AuditEntry.action.in_(("order.refund_failed", "order.cancel_failed")),
        )
        .order_by(AuditEntry.id)
    ).all()
    return {entry.subject_id: entry.data.get("reason") for entry in entries}


def failures_of_run(run: CancellationRun) -> list[OpenOrder]:
    """The run's failed orders as they are now, with the reasons; an interrupted run adds those it never reached."""
    reasons = {int(order_id): failure["reason"] for order_id, failure in run.failed.items()}
    if run.state == RunState.INTERRUPTED:
        reasons.update({order_id: None for order_id in run.order_ids[run.done :]})
    if not reasons:
        return []
    orders = db.session.scalars(sa.select(Order).where(Order.id.in_(reasons)).order_by(Order.id)).all()
    return [OpenOrder(order, reasons[order.id]) for order in orders]
