"""Command-line commands, registered on the app by the factory."""

from datetime import timedelta
from decimal import Decimal

import click
import sqlalchemy as sa

from app.extensions import db
from app.models import Event, EventStatus, utcnow
from app.services import accounts, events
from app.services.errors import DomainError

DEMO_ADMIN = ("admin@example.com", "Demo Admin", "admin-pass-123")
DEMO_BUYER = ("buyer@example.com", "Demo Buyer", "buyer-pass-123")
DEMO_EVENTS = [
    dict(
        name="The Midnight Quartet — Live",
        venue="Blue Hall",
        days_ahead=21,
        rows=10,
        columns=14,
        description="An evening of late-night jazz standards and new work.",
        categories=[
            events.CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 3),
            events.CategorySpec("Standard", Decimal("40.00"), "#2563eb"),
        ],
    ),
    dict(
        name="Hamlet",
        venue="The Old Playhouse",
        days_ahead=45,
        rows=12,
        columns=16,
        description="Shakespeare's tragedy in a new production.",
        categories=[
            events.CategorySpec("Stalls", Decimal("55.00"), "#7c3aed", 1, 6),
            events.CategorySpec("Circle", Decimal("32.50"), "#0d9488"),
        ],
    ),
]


@click.command("create-admin")
@click.argument("email")
@click.option("--name", default=None, help="Display name (defaults to the part before the @).")
@click.password_option(help="The admin's password (asked for when not given).")
def create_admin(email, name, password):
    """Create an administrator account, or make an existing account an administrator."""
    try:
        user, created = accounts.set_up_user(email, password, is_admin=True, name=name)
    except DomainError as error:
        raise click.ClickException(error.message) from None
    if created:
        click.echo(f"Created admin {user.email}.")
    else:
        click.echo(f"{user.email} already existed: it is now an admin with the new password.")


def on_sale_demo_event(name: str, now) -> tuple[Event | None, str]:
    """The bookable demo event of this name with "Kept", or "Published" for an interrupted run's draft."""
    candidates = db.session.scalars(
        sa.select(Event)
        .where(
            Event.name == name,
            Event.status.in_((EventStatus.PUBLISHED, EventStatus.DRAFT)),
            Event.sales_ended_at.is_(None),
            Event.date > now,
        )
        .order_by(Event.status != EventStatus.PUBLISHED, Event.id)
    ).all()
    for event in candidates:
        if event.status == EventStatus.PUBLISHED:
            return event, "Kept"
        try:
            events.publish_event(event, now)
        except DomainError:
            continue  # refused and rolled back by its unit of work: try the next candidate
        else:
            return event, "Published"
    return None, ""


@click.command("seed-demo")
def seed_demo():
    """Make sure the demo admin, buyer and two bookable demo events exist (safe to run again)."""
    for email, name, password in (DEMO_ADMIN, DEMO_BUYER):
        # Reset every run, so that the credentials printed are the ones that work.
        _, created = accounts.set_up_user(email, password, is_admin=email == DEMO_ADMIN[0], name=name)
        click.echo(f"{'Created' if created else 'Reset'} {email} (password: {password})")
    now = utcnow().replace(second=0, microsecond=0)
    for spec in DEMO_EVENTS:
        existing, verb = on_sale_demo_event(spec["name"], now)
        if existing is not None:
            click.echo(f"{verb} event {existing.name!r} on {existing.date:%Y-%m-%d}")
            continue
        event = events.create_event(
            name=spec["name"],
            description=spec["description"],
            venue=spec["venue"],
            date=(now + timedelta(days=spec["days_ahead"])).replace(hour=19, minute=30),
            rows=spec["rows"],
            columns=spec["columns"],
            categories=spec["categories"],
        )
        events.publish_event(event)
        click.echo(f"Created event {event.name!r}: {event.rows * event.columns} seats, {event.status}")


def register(app):
    for command in (create_admin, seed_demo):
        app.cli.add_command(command)
    from app.commands import COMMANDS

    for command in COMMANDS:
        app.cli.add_command(command)
