"""Benchmark data, written straight through the app's services into DATABASE_URL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

BENCH_PASSWORD = "bench-password"
BENCH_EMAIL = "bench-{:05d}@bench.stagepass.test"


def make_app():
    from app import create_app

    return create_app()


def big_event(app, name: str, rows: int = 20, columns: int = 20) -> int:
    """A fresh published event with a rows x columns map; returns its id."""
    from app.models import utcnow
    from app.services import events

    with app.app_context():
        event = events.create_event(
            name=name,
            date=utcnow().replace(microsecond=0) + timedelta(days=60),
            rows=rows,
            columns=columns,
            venue="Benchmark Arena",
            categories=[
                events.CategorySpec("Front", Decimal("90.00"), "#c2410c", 1, 5),
                events.CategorySpec("Rest", Decimal("45.00"), "#2563eb"),
            ],
        )
        events.publish_event(event)
        return event.id


def buyers(app, count: int) -> list[str]:
    """Emails of `count` bench buyers (created if missing) whose password is cheap to check.

    Real accounts use the default scrypt hash; a load test would otherwise measure mostly hashing.
    """
    from app.extensions import db
    from app.models import User, utcnow

    emails = [BENCH_EMAIL.format(i) for i in range(count)]
    with app.app_context():
        existing = set(db.session.scalars(sa.select(User.email).where(User.email.in_(emails))))
        cheap_hash = generate_password_hash(BENCH_PASSWORD, method="pbkdf2:sha256:1000")
        now = utcnow()
        missing = [
            {
                "email": e,
                "name": e.split("@")[0],
                "password_hash": cheap_hash,
                "is_admin": False,
                "created_at": now,
                "updated_at": now,
            }
            for e in emails
            if e not in existing
        ]
        if missing:
            db.session.execute(sa.insert(User), missing)
            db.session.commit()
    return emails


def signed_in_test_client(app, email: str):
    """A Flask test client logged in as the bench buyer, and the CSRF token its pages carry."""
    from scripts.bench.client import CSRF_META

    client = app.test_client()
    login_token = CSRF_META.search(client.get("/auth/login").get_data(as_text=True)).group(1)
    client.post("/auth/login", data={"email": email, "password": BENCH_PASSWORD, "csrf_token": login_token})
    return client, CSRF_META.search(client.get("/").get_data(as_text=True)).group(1)


def seat_ids(app, event_id: int) -> list[int]:
    from app.extensions import db
    from app.models import Seat

    with app.app_context():
        return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event_id).order_by(Seat.id)))


BENCH_STAFF_EMAIL = "bench-door-{:02d}@bench.stagepass.test"


def door_staff(app, count: int) -> list[str]:
    """Emails of `count` door staff accounts (created if missing), with the bench's cheap password."""
    from app.extensions import db
    from app.models import User

    emails = [BENCH_STAFF_EMAIL.format(i) for i in range(count)]
    with app.app_context():
        for email in emails:
            user = db.session.scalar(sa.select(User).where(User.email == email))
            if user is None:
                user = User(email=email, name=email.split("@")[0], password_hash="")
                db.session.add(user)
            user.password_hash = generate_password_hash(BENCH_PASSWORD, method="pbkdf2:sha256:1000")
            user.is_staff = True
        db.session.commit()
    return emails


def sold_out_event(app, name: str, rows: int = 20, columns: int = 20) -> tuple[int, list[str]]:
    """A fresh event whose every seat is sold (through the booking and payment services) with its
    ticket issued; returns its id and the tickets' signed QR payloads."""
    from app.extensions import db
    from app.models import Event, Ticket, User, utcnow
    from app.services import booking, payments, tickets

    event_id = big_event(app, name, rows, columns)
    ids = seat_ids(app, event_id)
    per_order = app.config["MAX_SEATS_PER_ORDER"]
    [email] = buyers(app, 1)
    with app.app_context():
        buyer = db.session.scalar(sa.select(User).where(User.email == email))
        for start in range(0, len(ids), per_order):
            event = db.session.get(Event, event_id)
            order = booking.hold(buyer, event, ids[start : start + per_order])
            order = payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS)
            tickets.issue_for_order(order, utcnow())
            db.session.commit()
        sold = db.session.scalars(sa.select(Ticket).where(Ticket.event_id == event_id).order_by(Ticket.id)).all()
        return event_id, [tickets.payload_for(ticket) for ticket in sold]


def reopen_doors(app, event_id: int) -> None:
    """Take back every check-in of the event, so the next round admits all its tickets again."""
    from app.extensions import db
    from app.models import Ticket

    with app.app_context():
        db.session.execute(
            sa.update(Ticket)
            .where(Ticket.event_id == event_id)
            .values(checked_in_at=None, checked_in_door=None, checked_in_by_id=None)
        )
        db.session.commit()


def checked_in(app, event_id: int) -> int:
    from app.extensions import db
    from app.models import Ticket

    with app.app_context():
        return db.session.scalar(
            sa.select(sa.func.count(Ticket.id)).where(Ticket.event_id == event_id, Ticket.checked_in_at.is_not(None))
        )
