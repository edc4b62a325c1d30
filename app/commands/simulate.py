"""`flask simulate-booking`: an on-sale rush against one seat (or K adjacent seats)."""

import json
import sys
import threading

import click
import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import utcnow
from app.services import simulation
from app.services.booking import _check_on_sale
from app.services.errors import DomainError


def rush_app(connections: int, timeout: float):
    """A second app on the same database whose buyers share a pool of `connections` connections."""
    from app import create_app

    settings = {key: value for key, value in current_app.config.items() if key.isupper()}
    options = dict(settings.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    if isinstance(db.engine.pool, sa.pool.QueuePool):
        # A buyer waits for a free connection as long as the rush may last, as requests wait in the app.
        options.update(pool_size=connections, max_overflow=0, pool_timeout=timeout)
    settings["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app = create_app(type("RushConfig", (), settings))
    with app.app_context():
        # Connect up front, so the rush measures booking, not connection set-up.
        opened = []
        try:
            for _ in range(connections):
                opened.append(db.engine.connect())
        except sa.exc.OperationalError as error:
            raise click.ClickException(f"Could not open {connections} database connections: {error.orig}") from None
        finally:
            for connection in opened:
                connection.close()
    return app


def _target(seat_id: int, seat_count: int, users: int, connections: int | None):
    """The seats to rush for and the buyers' pool size, or a ClickException saying why not."""
    try:
        seats = simulation.target_seats(seat_id, seat_count)
        _check_on_sale(seats[0].event, utcnow())
        limit = current_app.config["MAX_SEATS_PER_ORDER"]
        if seat_count > limit:
            raise click.ClickException(f"--seats {seat_count} is above MAX_SEATS_PER_ORDER ({limit}).")
        return seats, simulation.choose_connections(users, connections)
    except DomainError as error:
        raise click.ClickException(error.message) from None


def _report(result, as_json: bool) -> None:
    """The table, the database check, and with --json the summary as the last line."""
    summary = result.summary()
    rows = [
        ("buyers", summary["users"]),
        ("database connections", summary["connections"]),
        ("got the seats", summary["succeeded"]),
        ("refused cleanly", summary["conflicts"]),
        ("errors", summary["errors"]),
        ("wall time", f"{summary['wall_s']:.3f} s"),
        ("latency p50 / p95 / max", f"{summary['p50_ms']} / {summary['p95_ms']} / {summary['max_ms']} ms"),
        ("waiting for a connection", f"p50 {summary['wait_p50_ms']} / p95 {summary['wait_p95_ms']} ms"),
        ("in the database", f"p50 {summary['db_p50_ms']} / p95 {summary['db_p95_ms']} ms"),
    ]
    for name, value in rows:
        click.echo(f"  {name:<26} {value}", err=as_json)
    for sample in result.error_samples:
        click.echo(f"  error: {sample}", err=True)
    check = ", ".join(f"{label}: {count}" for label, count in result.live_bookings_per_seat.items())
    verdict = "OK, at most one live booking per seat" if result.database_consistent else "FAILED"
    click.echo(f"Database check ({check}): {verdict}", err=as_json)
    if as_json:
        click.echo(json.dumps(summary))


def _failure_reason(result, timeout: float) -> str:
    if result.timed_out:
        return f"{result.timed_out} buyer(s) were still waiting after --timeout {timeout:g} s"
    if result.succeeded == 0:
        return "nobody got the seats (taken already? try --reset)"
    return "see above"


@click.command("simulate-booking")
@click.argument("seat_id", type=int)
@click.option(
    "--users", "users", default=100, show_default=True, type=click.IntRange(1, 10000), help="Concurrent buyers."
)
@click.option(
    "--connections",
    type=click.IntRange(min=1),
    help="Database connections the buyers share [default: 32, at most half of what the server has free].",
)
@click.option(
    "--seats",
    "seat_count",
    default=1,
    show_default=True,
    type=click.IntRange(1, 50),
    help="Hold K adjacent seats starting at SEAT_ID.",
)
@click.option("--reset", is_flag=True, help="Free the seat(s) and close the buyers' open checkouts first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds after which buyers still waiting count as errors.",
)
def simulate_booking(seat_id, users, connections, seat_count, reset, as_json, timeout):
    """Release N buyer threads at the same moment on one seat; exit 0 when exactly one got it.

    The buyers share a pool of database connections, as web requests share an app server's pool.
    """
    seats, connections = _target(seat_id, seat_count, users, connections)
    labels = [seat.label for seat in seats]
    event = seats[0].event
    click.echo(
        f"Event {event.id} {event.name!r}, seats {', '.join(labels)}: {users} buyers, {connections} connections.",
        err=as_json,
    )

    buyer_ids = simulation.ensure_buyers(users)
    if reset:
        freed = simulation.reset(seats, buyer_ids)
        click.echo(f"Reset: freed {freed} booking(s).", err=as_json)
    seat_ids, event_id = [seat.id for seat in seats], event.id
    db.session.remove()

    app = rush_app(connections, timeout)
    lock = threading.Lock()
    with click.progressbar(length=users, label="Buyers done", file=sys.stderr) as bar:

        def tick():
            with lock:
                bar.update(1)

        result = simulation.run(app, event_id, seat_ids, buyer_ids, on_done=tick, timeout=timeout)
    with app.app_context():
        db.engine.dispose()

    result.connections = connections
    result.seat_labels = labels
    result.live_bookings_per_seat = simulation.live_bookings_per_seat(simulation.target_seats(seat_id, seat_count))
    _report(result, as_json)
    if not result.passed:
        click.echo(f"Simulation failed: {_failure_reason(result, timeout)}", err=True)
        sys.exit(1)


COMMANDS = [simulate_booking]
