"""Venue time zones: admins enter an event's time in its zone, the database keeps UTC.

A wall-clock time is turned into UTC only when it names exactly one moment in the zone: the hour
the clocks skip when they go forward does not exist, and the hour they repeat when they go back
happens twice, so both are refused with a message rather than silently shifted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from flask_babel import gettext as _

from app.services.errors import InvalidRequest


@cache
def timezone_names() -> tuple[str, ...]:
    """Every IANA zone this system knows, sorted (the admin form's choices)."""
    return tuple(sorted(available_timezones()))


def check_timezone(name: str | None) -> ZoneInfo:
    """The zone called `name`; raises InvalidRequest for a name that is no IANA zone."""
    if not name or name not in timezone_names():
        raise InvalidRequest(_("Choose a time zone from the list, such as Europe/Berlin."))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(_("Choose a time zone from the list, such as Europe/Berlin.")) from None


def to_utc(local: datetime, zone_name: str) -> datetime:
    """The naive UTC moment of the wall-clock time `local` in the zone; refuses skipped and repeated times."""
    zone = check_timezone(zone_name)
    local = local.replace(tzinfo=None)
    shown = f"{local:%Y-%m-%d %H:%M}"
    try:
        earlier = local.replace(tzinfo=zone, fold=0).astimezone(UTC)
        later = local.replace(tzinfo=zone, fold=1).astimezone(UTC)
        round_trip = earlier.astimezone(zone).replace(tzinfo=None)
    except (OverflowError, ValueError):  # the first or last hours of year 1 or 9999 in UTC
        raise InvalidRequest(_("%(time)s is out of range: enter a real date.", time=shown)) from None
    if round_trip != local:
        raise InvalidRequest(
            _(
                "%(time)s does not exist in %(zone)s: the clocks go forward then. Choose a time outside "
                "the skipped hour.",
                time=shown,
                zone=zone_name,
            )
        )
    if earlier != later:
        raise InvalidRequest(
            _(
                "%(time)s happens twice in %(zone)s: the clocks go back then. Choose a time outside the repeated hour.",
                time=shown,
                zone=zone_name,
            )
        )
    return earlier.replace(tzinfo=None)


def to_local(moment: datetime, zone_name: str) -> datetime:
    """The naive UTC `moment` as an aware time in the zone (UTC when the name is unknown)."""
    try:
        zone = check_timezone(zone_name)
    except InvalidRequest:
        zone = UTC
    return moment.replace(tzinfo=UTC).astimezone(zone)
