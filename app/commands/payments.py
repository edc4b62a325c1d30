"""Payment commands: reconciliation with the payment provider."""

import click
from flask.cli import AppGroup

from app.services import payments as payments_service

payments = AppGroup("payments", help="Payments and the payment provider.")


@payments.command("reconcile")
def reconcile():
    """Ask the provider about every payment attempt without an answer and settle it (the every-minute job's work)."""
    summary = payments_service.reconcile()
    click.echo(f"Reconciled: {summary}.")


COMMANDS = [payments]
