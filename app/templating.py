"""Template filters and globals."""

from decimal import Decimal

from flask import current_app

from app.models import row_label, utcnow


def money(value) -> str:
    if value is None:
        return ""
    return f"€{Decimal(value):,.2f}"


def when(value, fmt="%a %d %b %Y, %H:%M") -> str:
    return value.strftime(fmt) + " UTC" if value else ""


def register(app):
    app.add_template_filter(money)
    app.add_template_filter(when)
    app.add_template_filter(row_label)
    app.add_template_global(utcnow)
    app.add_template_global(lambda: current_app.config["MAX_SEATS_PER_ORDER"], "max_seats_per_order")
