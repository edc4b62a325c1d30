"""Template filters and globals."""

from datetime import datetime
from decimal import Decimal

from babel.dates import format_datetime, format_skeleton, get_timezone_name
from babel.numbers import format_currency
from flask import current_app, has_app_context
from flask_babel import get_locale

from app.models import row_label, utcnow
from app.services import zones

# English keeps the house order ("Sat 14 Mar 2027, 19:30"); other languages use their own.
ENGLISH_PATTERN = "EEE d MMM y, HH:mm"


def page_locale() -> str:
    """The language of this page, or of an email rendered under force_locale ('en' outside an app)."""
    return str(get_locale() or "en") if has_app_context() else "en"


def money(value, currency: str | None = None) -> str:
    """An amount in the currency (the configured default if none), formatted for the page's language."""
    if value is None:
        return ""
    code = currency or current_app.config["DEFAULT_CURRENCY"]
    return format_currency(Decimal(value), code, locale=page_locale())


def when(value, fmt="%a %d %b %Y, %H:%M") -> str:
    return value.strftime(fmt) + " UTC" if value else ""


def zone_abbreviation(moment: datetime, locale: str) -> str:
    """CET, MEZ, EST, JST: the language's short name of the zone, else the zone's own, else UTC±hh."""
    name = get_timezone_name(moment, "short", locale=locale)
    if name and name[0] not in "+-" and not name.startswith("GMT"):
        return name
    own = moment.tzname() or "UTC"
    return "UTC" + own if own[0] in "+-" else own


def local_time(value, zone_name: str | None) -> str:
    """A UTC time as the venue's clock shows it, with the zone named: "Sat 14 Mar 2027, 19:30 CET"."""
    if not value:
        return ""
    moment = zones.to_local(value, zone_name or "UTC")
    locale = page_locale()
    if locale.startswith("en"):
        text = format_datetime(moment, ENGLISH_PATTERN, locale=locale)
    else:
        text = f"{format_skeleton('yMMMEd', moment, locale=locale)}, {format_skeleton('Hm', moment, locale=locale)}"
    return f"{text} {zone_abbreviation(moment, locale)}"


def register(app):
    app.add_template_filter(money)
    app.add_template_filter(when)
    app.add_template_filter(local_time)
    app.add_template_filter(row_label)
    app.add_template_global(utcnow)
    app.add_template_global(page_locale)
    app.add_template_global(lambda: current_app.config["MAX_SEATS_PER_ORDER"], "max_seats_per_order")
