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


def seat_ids(app, event_id: int) -> list[int]:
    from app.extensions import db
    from app.models import Seat

    with app.app_context():
        return list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event_id).order_by(Seat.id)))
