"""The seat map as buyers and the live stream see it: compact, and true at this moment."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from app.extensions import db, redis_call
from app.models import Event, PriceCategory, Seat, SeatStatus, seat_state, utcnow

STATE_CODES = {SeatStatus.AVAILABLE: "a", SeatStatus.RESERVED: "r", SeatStatus.BOOKED: "b"}


def state_code(status: str, reservation_expires_at: datetime | None, now: datetime, list_waits: bool = False) -> str:
    """'a', 'r' or 'b'; a hold that has run out reads as available, unless the event's waiting
    list has the first claim on it (then it stays held until the list's offer step decides)."""
    if list_waits and _hold_ran_out(status, reservation_expires_at, now):
        return STATE_CODES[SeatStatus.RESERVED]
    return STATE_CODES[seat_state(status, reservation_expires_at, now)]


def _hold_ran_out(status: str, expires: datetime | None, now: datetime) -> bool:
    return status == SeatStatus.RESERVED and expires is not None and expires <= now


def _events_where_list_waits(event_ids) -> set[int]:
    from app.services import waitlist

    return waitlist.events_with_waiting(event_ids)


def seat_codes(connection, seat_ids, now: datetime | None = None) -> list[list]:
    """[[seat_id, code], ...] for these seats, read fresh through `connection`."""
    return [[seat_id, code] for seat_id, code, _ in seats_now(connection, seat_ids, now or utcnow())]


def seats_now(connection, seat_ids, now: datetime) -> list[tuple]:
    """(seat_id, code, hold expiry or None) for these seats, read fresh through `connection`."""
    rows = connection.execute(
        sa.select(Seat.id, Seat.status, Seat.reservation_expires_at, Seat.event_id)
        .where(Seat.id.in_(list(seat_ids)))
        .order_by(Seat.id)
    ).all()
    ran_out = {event_id for _, status, expires, event_id in rows if _hold_ran_out(status, expires, now)}
    waiting = _events_where_list_waits(ran_out) if ran_out else set()
    seats = []
    for seat_id, status, expires, event_id in rows:
        code = state_code(status, expires, now, event_id in waiting)
        live_expiry = code == STATE_CODES[SeatStatus.RESERVED] and expires is not None and expires > now
        seats.append((seat_id, code, expires if live_expiry else None))
    return seats


def ms_until(moment: datetime | None, now: datetime) -> int | None:
    """Milliseconds from now until `moment` (None stays None)."""
    if moment is None:
        return None
    return max(0, int((moment - now).total_seconds() * 1000))


def seat_states(event: Event, now: datetime | None = None) -> dict:
    """The whole map in one query for the seats and one for the categories."""
    return _compute(event, now or utcnow())[0]


def _compute(event: Event, now: datetime) -> tuple[dict, datetime | None]:
    """The map, and the moment it next changes by itself (a hold runs out, or sales end)."""
    rows = db.session.execute(
        sa.select(Seat.id, Seat.row, Seat.column, Seat.status, Seat.reservation_expires_at, Seat.price_category_id)
        .where(Seat.event_id == event.id)
        .order_by(Seat.id)
    ).all()
    list_waits = any(_hold_ran_out(r.status, r.reservation_expires_at, now) for r in rows) and bool(
        _events_where_list_waits([event.id])
    )
    seats = [
        [seat_id, row, column, state_code(status, expires, now, list_waits), category_id]
        for seat_id, row, column, status, expires, category_id in rows
    ]
    categories = db.session.execute(
        sa.select(PriceCategory.id, PriceCategory.name, PriceCategory.price, PriceCategory.color)
        .where(PriceCategory.event_id == event.id)
        .order_by(PriceCategory.position)
    ).all()
    selling = event.is_on_sale(now)
    state = {
        "event_id": event.id,
        "status": event.status,
        "on_sale": selling,
        "rows": event.rows,
        "columns": event.columns,
        "categories": [
            {"id": cid, "name": name, "price": f"{price:.2f}", "color": color} for cid, name, price, color in categories
        ],
        "seats": seats,
        "sales_start_at": event.sales_start_at.isoformat() + "Z" if event.sells_later(now) else None,
    }
    state["version"] = hashlib.blake2b(repr(state).encode(), digest_size=10).hexdigest()
    changes_at = [
        expires for _, _, _, status, expires, _ in rows if status == SeatStatus.RESERVED and expires and expires > now
    ]
    if selling:
        changes_at.append(event.date)
    elif event.sells_later(now):
        changes_at.append(event.sales_start_at)  # the countdown ends: pages switch to selling
    return state, min(changes_at, default=None)


# --- the cached map --------------------------------------------------------------------------
# Reads of a popular map vastly outnumber changes to it. Each process keeps the rendered JSON per
# event and serves it while (a) the event's change counter in Redis, bumped after every commit
# that changed seats, is unchanged, (b) nothing changed by itself since (a hold ran out, sales
# ended), and (c) it is at most MAX_AGE_SECONDS old, which bounds staleness even if a bump was
# lost (say, Redis was down). The JSON carries the counter it was rendered at, so a page that
# already applied a later pushed change can tell the map is older than what it shows.

MAX_AGE_SECONDS = 1.0


@dataclass
class RenderedMap:
    counter: int | None
    etag: str
    body: bytes
    read_started: float  # time.monotonic() before the database read: it knows every commit before then
    fresh_until: float
    next_change: datetime | None

    def usable(self, counter, now: datetime) -> bool:
        return (
            counter is not None
            and counter == self.counter
            and time.monotonic() < self.fresh_until
            and (self.next_change is None or now < self.next_change)
        )


_rendered: dict[int, RenderedMap] = {}
_rendered_lock = threading.Lock()


def _counter_key(event_id: int) -> str:
    return f"stagepass:seatmap:{event_id}:changes"


def change_counter(event_id: int) -> int | None:
    """The event's change counter, or None when Redis cannot say (then nothing is cached)."""
    value = redis_call(lambda client: client.get(_counter_key(event_id)), default=False)
    if value is False:
        return None
    return int(value or 0)


def rendered_map(event_id: int, load_event, now: datetime | None = None) -> RenderedMap:
    """The event's map as JSON bytes with its ETag, from this process's cache while still true.

    `load_event(event_id)` is called only on a miss; it returns the event or refuses (404), and
    anything that changes what it would say (cancelling, deleting) counts as a change of the map.
    """
    now = now or utcnow()
    counter = change_counter(event_id)
    cached = _rendered.get(event_id)
    if cached is not None and cached.usable(counter, now):
        return cached
    read_started = time.monotonic()
    event = load_event(event_id)
    state, next_change = _compute(event, now)
    rendered = RenderedMap(
        counter=counter,
        etag=state["version"],
        body=json.dumps({**state, "counter": counter}, separators=(",", ":")).encode(),
        read_started=read_started,
        fresh_until=read_started + MAX_AGE_SECONDS,
        next_change=next_change,
    )
    if counter is not None:
        with _rendered_lock:
            _rendered[event.id] = rendered
    return rendered


def forget_rendered_maps() -> None:
    with _rendered_lock:
        _rendered.clear()


def forget_rendered_map(event_id: int) -> None:
    with _rendered_lock:
        _rendered.pop(event_id, None)


def counter_key(event_id: int) -> str:
    return _counter_key(event_id)
