import json
import re
import threading
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Booking, Seat, User
from app.services import booking
from tests.invariants import assert_invariants, hold_rows


def first_seat_id(db_session, event):
    return db_session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))


def test_hundred_buyers_one_seat_exits_zero_with_one_success(runner, factory, db_session):
    seat_id = first_seat_id(db_session, factory.event())
    result = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "100", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["users"] == 100 and summary["succeeded"] == 1
    assert summary["conflicts"] == 99 and summary["errors"] == 0
    assert set(summary) == {
        *("users", "connections", "succeeded", "conflicts", "errors", "wall_s", "p50_ms", "p95_ms", "max_ms"),
        *("wait_p50_ms", "wait_p95_ms", "db_p50_ms", "db_p95_ms"),
    }
    assert db_session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.seat_id == seat_id)) == 1
    assert_invariants()


def test_table_and_database_check_are_printed(runner, factory, db_session):
    seat_id = first_seat_id(db_session, factory.event())
    result = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "5"])
    assert result.exit_code == 0, result.output
    assert "got the seats" in result.output and "latency p50 / p95 / max" in result.output
    assert "waiting for a connection" in result.output and "in the database" in result.output
    assert re.search(r"database connections +5\n", result.output)  # never more connections than buyers
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


def free_mariadb_connections(db_session):
    limit = db_session.scalar(sa.text("SELECT @@GLOBAL.max_connections"))
    in_use = int(db_session.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).one()[1])
    return limit, limit - in_use


def test_a_thousand_buyers_share_a_small_pool(runner, factory, db_session, monkeypatch):
    """Buyers wait for one of --connections connections, as requests wait for the app's pool;
    the wait is reported apart from the time in the database."""
    users, pool = 1000, 4
    seat_id = first_seat_id(db_session, factory.event())
    connections, lock = set(), threading.Lock()
    real_hold = booking.hold

    def hold_noting_the_connection(user, event, seat_ids):
        with lock:
            connections.add(id(db.session.connection().connection.dbapi_connection))
        return real_hold(user, event, seat_ids)

    monkeypatch.setattr(booking, "hold", hold_noting_the_connection)
    begin = time.perf_counter()
    result = runner.invoke(
        args=["simulate-booking", str(seat_id), "--users", str(users), "--connections", str(pool), "--json"]
    )
    elapsed = time.perf_counter() - begin
    assert result.exit_code == 0, result.output[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["users"], summary["connections"]) == (users, pool)
    assert (summary["succeeded"], summary["conflicts"], summary["errors"]) == (1, users - 1, 0)
    assert 1 <= len(connections) <= pool
    # 1,000 buyers through 4 connections: most of a buyer's time is the queue for a connection.
    assert summary["wait_p95_ms"] > summary["db_p50_ms"]
    assert "waiting for a connection" in result.stderr and "in the database" in result.stderr
    assert db_session.scalar(sa.select(sa.func.count(Booking.id)).where(Booking.seat_id == seat_id)) == 1
    assert_invariants()
    print(f"1000 buyers, {pool} connections: {elapsed:.1f} s, {summary}")


def test_default_pool_is_bounded_below_the_servers_limit(app, db_session):
    from app.services import simulation

    assert simulation.choose_connections(5, None) == 5
    assert simulation.choose_connections(5000, 7) == 7
    mysql = db.engine.dialect.name == "mysql"
    before = free_mariadb_connections(db_session) if mysql else None
    chosen = simulation.choose_connections(5000, None)
    assert 1 <= chosen <= simulation.DEFAULT_CONNECTIONS
    if mysql:  # other clients may connect or leave meanwhile: the bound holds at one of the two moments
        after = free_mariadb_connections(db_session)
        assert chosen <= max(1, before[1] // 2, after[1] // 2) < after[0]


@pytest.mark.mariadb
def test_more_connections_than_the_server_has_free_is_refused_up_front(runner, factory, db_session):
    limit, _ = free_mariadb_connections(db_session)
    event = factory.event()
    seat_id = first_seat_id(db_session, event)
    before = hold_rows()
    result = runner.invoke(
        args=["simulate-booking", str(seat_id), "--users", "5000", "--connections", str(limit + 1), "--reset"]
    )
    assert result.exit_code != 0
    assert f"max_connections is {limit}" in result.output and "SET GLOBAL max_connections=" in result.output
    assert "Nothing was changed" in result.output
    assert hold_rows() == before
    assert db_session.scalar(sa.select(sa.func.count(User.id)).where(User.email.like("sim-%"))) == 0


def test_buyers_still_waiting_after_the_timeout_are_errors(runner, factory, db_session, monkeypatch):
    seat_id = first_seat_id(db_session, factory.event())
    release, stuck = threading.Event(), []
    real_hold = booking.hold

    def one_buyer_gets_stuck(user, event, seat_ids):
        with lock:
            first = not stuck
            if first:
                stuck.append(threading.current_thread())
        if first:
            release.wait(30)
            raise booking.SeatUnavailable()
        return real_hold(user, event, seat_ids)

    lock = threading.Lock()
    monkeypatch.setattr(booking, "hold", one_buyer_gets_stuck)
    threading.Timer(15, release.set).start()  # never leave the thread behind, even if the command hangs
    begin = time.perf_counter()
    result = runner.invoke(args=["simulate-booking", str(seat_id), "--users", "5", "--timeout", "2", "--json"])
    elapsed = time.perf_counter() - begin
    release.set()
    stuck[0].join(10)
    assert elapsed < 10, elapsed
    assert result.exit_code == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["succeeded"], summary["conflicts"], summary["errors"]) == (1, 3, 1)
    assert summary["max_ms"] > 1000  # the stuck buyer, counted until it was given up on
    assert "did not finish within the --timeout of 2 s" in result.stderr
    assert "1 buyer(s) were still waiting after --timeout 2 s" in result.stderr
    assert_invariants()
