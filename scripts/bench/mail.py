"""What email costs: the outbox row in the payment's transaction, and sending over SMTP, on DATABASE_URL.

    DATABASE_URL=mysql+pymysql://root@127.0.0.1/stagepass_bench REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python scripts/bench/mail.py --orders 90

Pays for `--orders` two-seat orders by card, taking turns: without the confirmation email, with
its outbox row only, and with the row and the RQ job queued after the commit (what the app does),
and reports the median time of each. Then sends this run's confirmations (text, HTML and the
tickets PDF) to an aiosmtpd server on 127.0.0.1 in this process, in one batch sharing one SMTP
session as the jobs do, and reports emails per second. Needs TICKET_SIGNING_KEYS like the app.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from scripts.bench import fixtures


class Counting:
    """aiosmtpd handler that counts what it receives."""

    def __init__(self):
        self.received = 0
        self.bytes = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802  (the name aiosmtpd calls)
        self.received += 1
        self.bytes += len(envelope.original_content)
        return "250 OK"


def pay(app, event_id: int, seats: list[int], email: str) -> float:
    """Milliseconds of pay_by_card for a fresh hold of these seats (the hold itself not counted)."""
    from app.extensions import db
    from app.models import Event, User
    from app.services import booking, payments

    with app.app_context():
        buyer = db.session.scalar(sa.select(User).where(User.email == email))
        order = booking.hold(buyer, db.session.get(Event, event_id), seats)
        started = time.perf_counter()
        payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
        return (time.perf_counter() - started) * 1000


def summary(name: str, timings: list[float]) -> str:
    return f"{name}: median {statistics.median(timings):.1f} ms, min {min(timings):.1f} ms ({len(timings)} runs)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=60)
    args = parser.parse_args()

    from aiosmtpd.controller import Controller

    from app import jobs
    from app.extensions import db, limiter, redis_call
    from app.models import OutboxEmail
    from app.services import mail

    handler = Counting()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        app = fixtures.make_app()
        limiter.enabled = False
        app.config.update(MAIL_BACKEND="smtp", MAIL_SERVER="127.0.0.1", MAIL_PORT=port)
        emails = fixtures.buyers(app, args.orders)
        event_id = fixtures.big_event(app, f"Mail benchmark {time.time():.0f}")
        seats = fixtures.seat_ids(app, event_id)
        with app.app_context():
            first_id = (db.session.scalar(sa.select(sa.func.max(OutboxEmail.id))) or 0) + 1
        real_enqueue, real_queue_sending = mail.enqueue_order_confirmation, mail.queue_sending
        queued_jobs = []
        enqueue_wall, enqueue_cpu = [], []

        def timed_enqueue(order, **kwargs):
            """enqueue_order_confirmation, timed: wall and CPU (what a busy machine distorts least)."""
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return real_enqueue(order, **kwargs)
            finally:
                enqueue_cpu.append((time.process_time() - cpu_started) * 1000)
                enqueue_wall.append((time.perf_counter() - started) * 1000)

        def queue_and_remember(ids):
            """What queue_sending does, keeping the job so that the benchmark can take it back."""
            job = redis_call(lambda client: jobs.queue(client).enqueue(jobs.send_emails, ids, result_ttl=600))
            queued_jobs.append(job)
            return job is not None

        variants = {"no email": [], "outbox row only": [], "outbox row + RQ job after the commit": []}
        for number, email in enumerate(emails):
            variant = list(variants)[number % 3]
            mail.enqueue_order_confirmation = timed_enqueue
            if variant == "no email":
                mail.enqueue_order_confirmation = lambda order, **kwargs: None
            if variant == "outbox row only":
                mail.queue_sending = lambda ids: True  # the periodic sweep would send it
            else:
                mail.queue_sending = queue_and_remember
            try:
                timing = pay(app, event_id, seats[2 * number : 2 * number + 2], email)
            finally:
                mail.enqueue_order_confirmation, mail.queue_sending = real_enqueue, real_queue_sending
            variants[variant].append(timing)

        with app.app_context():
            ids = list(
                db.session.scalars(sa.select(OutboxEmail.id).where(OutboxEmail.id >= first_id).order_by(OutboxEmail.id))
            )
            started = time.perf_counter()
            sent = mail.send_due_emails(ids=ids)
            elapsed = time.perf_counter() - started
            print(f"database: {db.engine.url.render_as_string(hide_password=True)} ({os.cpu_count()} cores)")
            for job in filter(None, queued_jobs):  # sent above: no worker on this Redis should find them
                job.delete()
    finally:
        controller.stop()
    for variant, timings in variants.items():
        print(summary(f"pay_by_card, {variant}", timings))
    print(
        summary(
            "  of which enqueue_order_confirmation (reads the event, the seats and the dedupe key; INSERT at commit)",
            enqueue_wall,
        )
    )
    print(summary("  its CPU time", enqueue_cpu))
    print(
        f"sent {sent} of {len(ids)} confirmations (2 tickets, PDF attached) in {elapsed:.2f} s: "
        f"{sent / elapsed:.1f} emails/s, {elapsed / max(sent, 1) * 1000:.1f} ms each, "
        f"{handler.bytes / max(handler.received, 1) / 1024:.0f} KiB each; server received {handler.received}"
    )


if __name__ == "__main__":
    main()
