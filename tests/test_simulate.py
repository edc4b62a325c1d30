import json

import sqlalchemy as sa

from app.models import Booking, Seat, User
from tests.invariants import assert_invariants


def first_seat_id(db_session, event):
    return db_session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))


def test_hundred_buyers_one_seat_exits_zero_with_one_success(runner, factory, db_session):
    seat_id = first_seat_id(db_session, factory.event())
    result = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "100", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["users"] == 100 and summary["succeeded"] == 1
    assert summary["conflicts"] == 99 and summary["errors"] == 0
    assert set(summary) == {"users", "succeeded", "conflicts", "errors", "wall_s", "p50_ms", "p95_ms", "max_ms"}
    assert db_session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.seat_id == seat_id)) == 1
    assert_invariants()


def test_table_and_database_check_are_printed(runner, factory, db_session):
    seat_id = first_seat_id(db_session, factory.event())
    result = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "5"])
    assert result.exit_code == 0, result.output
    assert "got the seats" in result.output and "latency p50 / p95 / max" in result.output
    assert "OK, at most one live booking per seat" in result.output


def test_multi_seat_rush_and_reset(runner, factory, db_session):
    event = factory.event(rows=2, columns=6)
    seat_id = first_seat_id(db_session, event)
    first = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "30", "--seats", "3", "--json"])
    assert first.exit_code == 0, first.output
    again = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "30", "--seats", "3"])
    assert again.exit_code == 1
    assert "nobody got the seats" in again.output
    reset = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "30", "--seats", "3", "--reset", "--json"])
    assert reset.exit_code == 0, reset.output
    assert json.loads(reset.output.strip().splitlines()[-1])["succeeded"] == 1
    assert db_session.scalar(sa.select(sa.func.count(User.id)).where(User.email.like("sim-%"))) == 30
    assert_invariants()


def test_missing_seat_is_refused_clearly(runner, db_session):
    result = runner.invoke(args=["simulate-booking", "999999"])
    assert result.exit_code != 0
    assert "Seat 999999 does not exist." in result.output


def test_not_enough_adjacent_seats(runner, factory, db_session):
    event = factory.event(rows=1, columns=3)
    last = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()[-1]
    result = runner.invoke(args=["simulate-booking", str(last), "--seats", "2"])
    assert result.exit_code != 0 and "adjacent seats" in result.output


def test_seat_of_an_event_not_on_sale(runner, factory, db_session):
    seat_id = first_seat_id(db_session, factory.event(status="draft"))
    result = runner.invoke(args=["simulate-booking", str(seat_id)])
    assert result.exit_code != 0 and "not on sale" in result.output
