"""Precompiled statements answer exactly as the same statement through Core does, on SQLite and
MariaDB: the same rows and Python types (datetimes, decimals, booleans), any length of IN list,
matched-row counts for UPDATE, SQLAlchemy's exceptions for driver errors, and the engine's events."""

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Event, PriceCategory, Seat, SeatStatus, User, utcnow
from app.services.precompiled import Precompiled
from tests.booking.test_query_counts import counted_statements


def _seats_with_facts():
    price = sa.select(PriceCategory.price).where(PriceCategory.id == Seat.price_category_id).scalar_subquery()
    is_admin = sa.select(User.is_admin).where(User.id == sa.bindparam("user")).scalar_subquery()
    return (
        sa.select(Seat.id, Seat.status, Seat.reservation_expires_at, price.label("price"), is_admin.label("is_admin"))
        .where(Seat.id.in_(sa.bindparam("ids", expanding=True)), Seat.is_free(sa.bindparam("now")))
        .order_by(Seat.id)
    )


SEATS_WITH_FACTS = Precompiled(_seats_with_facts)


def _core_rows(params):
    return [tuple(row) for row in db.session.connection().execute(_seats_with_facts(), params)]


def test_rows_and_types_are_the_same_as_through_core(factory):
    event = factory.event(rows=2, columns=3)
    admin = factory.user(admin=True)
    ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    now = utcnow()
    held = db.session.get(Seat, ids[1])
    held.status, held.reservation_expires_at = SeatStatus.RESERVED, now - timedelta(minutes=1)  # ran out: free
    db.session.commit()
    connection = db.session.connection()
    for chosen in (ids[:1], ids[:2], ids, ids[::2], ids[:1]):  # lengths change, and come back
        params = {"ids": list(chosen), "now": now, "user": admin.id}
        rows = SEATS_WITH_FACTS.rows(connection, params)
        assert [tuple(row) for row in rows] == _core_rows(params)
        assert [row.id for row in rows] == list(chosen)
    row = SEATS_WITH_FACTS.first(connection, {"ids": [ids[1]], "now": now, "user": admin.id})
    assert row.status == SeatStatus.RESERVED
    assert row.reservation_expires_at == held.reservation_expires_at  # reloaded after the commit
    assert isinstance(row.price, Decimal) and row.price == row.price.quantize(Decimal("0.01"))
    assert row.is_admin is True
    assert SEATS_WITH_FACTS.first(connection, {"ids": [-1], "now": now, "user": admin.id}) is None


def _rename_events():
    return (
        sa.update(Event)
        .where(Event.id.in_(sa.bindparam("events", expanding=True)))
        .values(name=sa.bindparam("to"), updated_at=sa.bindparam("now"))
    )


def test_an_update_counts_the_rows_it_matched(factory):
    event = factory.event()
    rename = Precompiled(_rename_events)
    connection = db.session.connection()
    one_of_two = {"events": [event.id, -1], "to": event.name, "now": utcnow()}
    assert rename.rowcount(connection, one_of_two) == 1  # only the event that exists
    assert rename.rowcount(connection, {"events": [-1], "to": "Nobody", "now": utcnow()}) == 0
    assert rename.rowcount(connection, {"events": [event.id], "to": "Renamed", "now": utcnow()}) == 1
    db.session.commit()
    assert db.session.get(Event, event.id, populate_existing=True).name == "Renamed"


def test_a_column_left_to_its_python_default_is_refused(factory):
    touch = Precompiled(lambda: sa.update(Event).values(name=sa.bindparam("to")))  # updated_at has an onupdate
    with pytest.raises(ValueError, match="Python-side default"):
        touch.rowcount(db.session.connection(), {"to": "Everything"})
    db.session.rollback()


def test_driver_errors_come_as_sqlalchemy_errors_and_events_run(factory):
    user = factory.user()
    email, user_id = user.email, user.id
    duplicate = Precompiled(
        lambda: sa.insert(User).values(
            email=sa.bindparam("email"),
            name="Twin",
            password_hash="x",
            is_admin=False,
            is_staff=False,
            created_at=sa.bindparam("now"),
            updated_at=sa.bindparam("now"),
        )
    )
    with pytest.raises(sa.exc.IntegrityError):
        duplicate.rowcount(db.session.connection(), {"email": email, "now": utcnow()})
    db.session.rollback()
    with counted_statements() as made:
        SEATS_WITH_FACTS.rows(db.session.connection(), {"ids": [1], "now": utcnow(), "user": user_id})
    assert len(made) == 1 and made[0].lstrip().upper().startswith("SELECT")
    wipe_audit = Precompiled(lambda: sa.text("DELETE FROM audit_log"))
    with pytest.raises(sa.exc.StatementError, match="append-only"):  # as through Core
        wipe_audit.rowcount(db.session.connection(), {})
    db.session.rollback()


def test_parameters_are_converted_by_their_types(factory):
    """SQLite's driver takes no Decimal: the type's own processor converts it, as through Core."""
    event = factory.event()
    priced = Precompiled(
        lambda: sa.select(PriceCategory.id).where(
            PriceCategory.event_id == sa.bindparam("event"), PriceCategory.price >= sa.bindparam("at_least")
        )
    )
    rows = priced.rows(db.session.connection(), {"event": event.id, "at_least": Decimal("0.00")})
    assert {row.id for row in rows} == {category.id for category in event.price_categories}


def test_a_parameter_the_statement_does_not_have_is_refused(factory):
    with pytest.raises(ValueError, match="not parameters of the statement"):
        SEATS_WITH_FACTS.rows(db.session.connection(), {"ids": [1], "now": utcnow(), "user": 1, "usr": 2})
