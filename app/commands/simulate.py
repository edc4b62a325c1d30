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


def rush_app(users: int):
    """A second app on the same database whose pool has a connection of its own for each buyer."""
    from app import create_app

    settings = {key: value for key, value in current_app.config.items() if key.isupper()}
    options = dict(settings.get("SQLALCHEMY_ENGINE_OPTIONS", {}))
    if isinstance(db.engine.pool, sa.pool.QueuePool):
        options.update(pool_size=users, max_overflow=0)
    settings["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app = create_app(type("RushConfig", (), settings))
    with app.app_context():
        # Connect up front, so the rush measures booking, not connection set-up.
        connections = []
        try:
            for _ in range(users):
                connections.append(db.engine.connect())
        except sa.exc.OperationalError as error:
            raise click.ClickException(f"Could not open {users} database connections: {error.orig}") from None
        finally:
            for connection in connections:
                connection.close()
    return app


@click.command("simulate-booking")
@click.argument("seat_id", type=int)
@click.option(
    "--users", "users", default=100, show_default=True, type=click.IntRange(1, 5000), help="Concurrent buyers."
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
def simulate_booking(seat_id, users, seat_count, reset, as_json, timeout):
    """Release N buyer threads at the same moment on one seat; exit 0 when exactly one got it."""
    try:
        seats = simulation.target_seats(seat_id, seat_count)
        _check_on_sale(seats[0].event, utcnow())
        limit = current_app.config["MAX_SEATS_PER_ORDER"]
        if seat_count > limit:
            raise click.ClickException(f"--seats {seat_count} is above MAX_SEATS_PER_ORDER ({limit}).")
    except DomainError as error:
        raise click.ClickException(error.message) from None
    shortage = simulation.connection_shortage(users)
    if shortage:
        raise click.ClickException(shortage)
    labels = [seat.label for seat in seats]
    event = seats[0].event
    click.echo(f"Event {event.id} {event.name!r}, seats {', '.join(labels)}: {users} buyers.", err=as_json)

    buyer_ids = simulation.ensure_buyers(users)
    if reset:
        freed = simulation.reset(seats, buyer_ids)
        click.echo(f"Reset: freed {freed} booking(s).", err=as_json)
    seat_ids, event_id = [seat.id for seat in seats], event.id
    db.session.remove()

    app = rush_app(users)
    lock = threading.Lock()
    with click.progressbar(length=users, label="Buyers done", file=sys.stderr) as bar:

        def tick():
            with lock:
                bar.update(1)

        result = simulation.run(app, event_id, seat_ids, buyer_ids, on_done=tick, timeout=timeout)
    with app.app_context():
        db.engine.dispose()

    seats = simulation.target_seats(seat_id, seat_count)
    result.seat_labels = labels
    result.live_bookings_per_seat = simulation.live_bookings_per_seat(seats)
    summary = result.summary()
    rows = [
        ("buyers", summary["users"]),
        ("got the seats", summary["succeeded"]),
        ("refused cleanly", summary["conflicts"]),
        ("errors", summary["errors"]),
        ("wall time", f"{summary['wall_s']:.3f} s"),
        ("latency p50 / p95 / max", f"{summary['p50_ms']} / {summary['p95_ms']} / {summary['max_ms']} ms"),
    ]
    for name, value in rows:
        click.echo(f"  {name:<24} {value}", err=as_json)
    for sample in result.error_samples:
        click.echo(f"  error: {sample}", err=True)
    check = ", ".join(f"{label}: {count}" for label, count in result.live_bookings_per_seat.items())
    verdict = "OK, at most one live booking per seat" if result.database_consistent else "FAILED"
    click.echo(f"Database check ({check}): {verdict}", err=as_json)
    if as_json:
        click.echo(json.dumps(summary))
    if not result.passed:
        if result.timed_out:
            reason = f"{result.timed_out} buyer(s) were still waiting after --timeout {timeout:g} s"
        elif result.succeeded == 0:
            reason = "nobody got the seats (taken already? try --reset)"
        else:
            reason = "see above"
        click.echo(f"Simulation failed: {reason}", err=True)
        sys.exit(1)


COMMANDS = [simulate_booking]
