"""The cost of the waiting list's offer step: a buyer releases a one-seat hold of a sold-out 20 x 20
event while 1,000 entries wait, and the release's unit of work offers the seat on.

    mariadb -uroot -e "CREATE DATABASE stagepass_bench_waitlist CHARACTER SET utf8mb4"
    DATABASE_URL='mysql+pymysql://root@127.0.0.1/stagepass_bench_waitlist?charset=utf8mb4' \
    REDIS_URL=redis://127.0.0.1:6379/9 .venv/bin/python scripts/bench/waitlist_offer.py --releases 50

Three scenarios, each on a fresh sold-out event (400 one-seat holds), timing `booking.release`
(the freeing step and the offer step, one transaction) and counting its SQL statements:
  no list:   nobody waits (the release as it was before the waiting list);
  first fits: 1,000 entries for one seat each; the first waiting entry gets the seat;
  none fits: 1,000 entries for six seats side by side; released seats are never adjacent, so
             the offer step reads every entry and finds none it can serve (the worst case).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from scripts.bench import fixtures
from scripts.bench.client import percentile

WAITING = 1000
SEATS = 400


def sold_out_event(app, name: str, holders: list[int]) -> tuple[int, list[int]]:
    """A fresh 20 x 20 event whose every seat is held by one of `holders`; returns (event, orders)."""
    from app.extensions import db
    from app.models import Event, User
    from app.services import booking

    event_id = fixtures.big_event(app, name)
    seats = fixtures.seat_ids(app, event_id)
    orders = []
    with app.app_context():
        event = db.session.get(Event, event_id)
        for user_id, seat_id in zip(holders, seats, strict=True):
            orders.append(booking.hold(db.session.get(User, user_id), event, [seat_id]).id)
    return event_id, orders


def add_entries(app, event_id: int, user_ids: list[int], party_size: int, together: bool) -> None:
    """WAITING entries in one multi-row INSERT (the queue's order is the ids' order)."""
    from app.extensions import db
    from app.models import Waitlist, WaitlistEntry, utcnow

    now = utcnow()
    rows = [
        {
            "event_id": event_id,
            "user_id": user_id,
            "party_size": party_size,
            "together": together,
            "status": "waiting",
            "created_at": now,
            "updated_at": now,
        }
        for user_id in user_ids
    ]
    with app.app_context():
        db.session.add(Waitlist(event_id=event_id))  # what the first join creates
        db.session.execute(sa.insert(WaitlistEntry), rows)
        db.session.commit()


def time_releases(app, orders: list[int], count: int) -> tuple[list[float], list[float], list[int]]:
    """Release every other order (never two neighbouring seats), timing each: (wall seconds, this
    process's CPU seconds, SQL statements), per release."""
    from app.extensions import db
    from app.models import Order
    from app.services import booking

    took, cpu, statements = [], [], []
    with app.app_context():
        counter = [0]

        def count_statement(*_):
            counter[0] += 1

        sa.event.listen(db.engine, "before_cursor_execute", count_statement)
        try:
            for order_id in orders[::2][:count]:
                order = db.session.get(Order, order_id)
                user = order.user
                counter[0] = 0
                started, cpu_started = time.perf_counter(), time.process_time()
                booking.release(order, user=user)
                took.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
                statements.append(counter[0])
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", count_statement)
    return took, cpu, statements


def offers_made(app, event_id: int) -> int:
    from app.extensions import db
    from app.models import WaitlistEntry

    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count(WaitlistEntry.id)).where(
                WaitlistEntry.event_id == event_id, WaitlistEntry.status == "offered"
            )
        )


def user_ids(app, emails: list[str]) -> list[int]:
    from app.extensions import db
    from app.models import User

    with app.app_context():
        ids = dict(db.session.execute(sa.select(User.email, User.id).where(User.email.in_(emails))).all())
    return [ids[email] for email in emails]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=50)
    args = parser.parse_args()
    from flask_migrate import upgrade

    app = fixtures.make_app()
    with app.app_context():
        upgrade()
    people = user_ids(app, fixtures.buyers(app, SEATS + WAITING))
    holders, waiting = people[:SEATS], people[SEATS:]
    stamp = int(time.time())
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, {args.releases} releases per scenario")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| scenario | median ms | p95 ms | max ms | app CPU ms (median) | SQL statements per release | offers made |")
    print("|---|---|---|---|---|---|---|")
    for name, party, together in (("no list", None, False), ("first fits", 1, False), ("none fits", 6, True)):
        event_id, orders = sold_out_event(app, f"Waitlist bench {name} {stamp}", holders)
        if party is not None:
            add_entries(app, event_id, waiting, party, together)
        took, cpu, statements = time_releases(app, orders, args.releases)
        ms = sorted(t * 1000 for t in took)
        offers = offers_made(app, event_id)
        print(
            f"| {name} | {statistics.median(ms):.1f} | {percentile(ms, 0.95):.1f} | {ms[-1]:.1f} "
            f"| {statistics.median(cpu) * 1000:.1f} | {statistics.median(statements):.0f} | {offers} |"
        )


if __name__ == "__main__":
    main()
