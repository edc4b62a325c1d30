"""Cancelling a sold event: step one (the event row) and the job's orders per second; the audit guard's cost.

    scripts/bench/run.sh cancellation          # on a throwaway MariaDB database
    DATABASE_URL=... REDIS_URL=... .venv/bin/python scripts/bench/cancellation.py --orders 200

Three figures: how long the one transaction that marks the event cancelled and releases its holds
takes (the event row is locked only that long), how many paid orders a second the job cancels and
refunds (one unit of work each, run by RQ's SimpleWorker in this process against the sandbox
provider), and what the append-only guard (a listener that reads every SQL statement before it
runs) costs per statement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from scripts.bench import fixtures


def sell(app, event_id: int, emails: list[str], holds: int) -> None:
    """One paid order of one seat per buyer, then `holds` more buyers holding a seat each."""
    from app.extensions import db
    from app.models import Event, User
    from app.services import booking, payments

    seats = fixtures.seat_ids(app, event_id)
    with app.app_context():
        event = db.session.get(Event, event_id)
        for index, email in enumerate(emails):
            buyer = db.session.scalar(sa.select(User).where(User.email == email))
            order = booking.hold(buyer, event, [seats[index]])
            if index < len(emails) - holds:
                payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)


def time_cancellation(app, event_id: int) -> tuple[float, float, object]:
    """Seconds of step one, seconds of the job, and the finished run.

    The job is run the way RQ's worker runs it (app.jobs.cancel_orders), in this process; the
    emails the cancellations queue are left in the queue (emptied after), not timed.
    """
    from app import jobs
    from app.extensions import db, get_redis
    from app.models import Event
    from app.services import cancellations

    with app.app_context():
        started = time.perf_counter()
        run = cancellations.start_event_cancellation(db.session.get(Event, event_id))
        step_one = time.perf_counter() - started
        queue = jobs.queue(get_redis())
        job = queue.fetch_job(f"stagepass-cancellation-{run.id}")
        started = time.perf_counter()
        job.func(*job.args)
        elapsed = time.perf_counter() - started
        queue.empty()
        return step_one, elapsed, cancellations.find_run(run.id)


def time_guard(count: int) -> float:
    """Nanoseconds the append-only guard spends reading one ordinary statement."""
    from app.services import audit

    statement = "SELECT seats.id, seats.status FROM seats WHERE seats.id IN (%s, %s) ORDER BY seats.id FOR UPDATE"

    class Context:
        execution_options = {}

    started = time.perf_counter()
    for _ in range(count):
        audit._refuse_rewrite(None, None, statement, (), Context, False)
    return (time.perf_counter() - started) / count * 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200, help="paid orders of one seat each")
    parser.add_argument("--holds", type=int, default=50, help="buyers holding a seat, released by step one")
    parser.add_argument("--statements", type=int, default=200_000)
    args = parser.parse_args()
    app = fixtures.make_app()
    emails = fixtures.buyers(app, args.orders + args.holds)
    event_id = fixtures.big_event(app, "Cancellation bench", rows=20, columns=20)
    sell(app, event_id, emails, args.holds)
    step_one, job, run = time_cancellation(app, event_id)
    print(f"step one (event cancelled, {args.holds} holds released): {step_one * 1000:.0f} ms")
    print(
        f"job: {run.cancelled} orders cancelled and refunded in {job:.2f} s = {run.cancelled / job:.0f} orders/s "
        f"({job / max(run.cancelled, 1) * 1000:.1f} ms each), {len(run.failed)} failed, refunded {run.refunded}"
    )
    print(f"audit guard: {time_guard(args.statements):.0f} ns per statement read ({args.statements} statements)")
    return 0 if run.cancelled == args.orders and not run.failed else 1


if __name__ == "__main__":
    sys.exit(main())
