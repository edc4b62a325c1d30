"""Operational commands, one module per area; each module lists its click commands here."""

from app.commands import operations, payments, simulate

COMMANDS = [*simulate.COMMANDS, *operations.COMMANDS, *payments.COMMANDS]
