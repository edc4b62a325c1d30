"""Events, their price categories and seat maps.

Changes to a seat map that buyers may be using lock the event row first (holds take a shared lock
on it, so they wait for the change and the change waits for them), then the seats in ascending id.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

from app.extensions import db
from app.i18n import status_label
from app.models import Event, EventStatus, Order, PriceCategory, Seat, SeatStatus, WaitingRoomMode, row_label, utcnow
from app.services import audit, currencies, locking, seat_changes, waiting_room, zones
from app.services.errors import DomainError, IllegalTransition, InvalidRequest, NotFound
from app.services.querying import contains
from app.services.transactions import run_unit_of_work

SEAT_INSERT_CHUNK = 500
MAX_PRICE = Decimal("10000.00")
MAX_NAME_LENGTH = 200
DEFAULT_COLOR = "#4f7cff"
COLOR_PATTERN = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")
# How many taken seats a refusal names before it says "and N more".
LABELS_SHOWN = 5


@dataclass
class CategorySpec:
    """A price category as the admin describes it; no row range means 'every other row'."""

    name: str
    price: Decimal
    color: str = DEFAULT_COLOR
    first_row: int | None = None
    last_row: int | None = None

    def rows_text(self) -> str:
        if self.first_row is None:
            return "all other rows"
        if self.first_row == self.last_row:
            return f"row {row_label(self.first_row)}"
        return f"rows {row_label(self.first_row)}-{row_label(self.last_row)}"


@dataclass
class EventDetails:
    """What the admin edits about an event."""

    name: str
    date: datetime
    rows: int
    columns: int
    categories: list[CategorySpec]
    description: str = ""
    venue: str = ""
    # None: the event's own (or, for a new event, the configured default).
    timezone: str | None = None
    currency: str | None = None
    sales_start_at: datetime | None = None
    waiting_room: str = WaitingRoomMode.ON_SALE
    waiting_room_rate: int | None = None


class EventNotPublishable(DomainError):
    """This event cannot be published."""

    default_message = _l("This event cannot be published.")

    code = "not_publishable"


class EventNotEditable(DomainError):
    """This event can no longer be changed."""

    default_message = _l("This event can no longer be changed.")

    code = "not_editable"


class SeatsTaken(DomainError):
    """Some seats are held or booked, so the seat map cannot change."""

    default_message = _l("Some seats are held or booked, so the seat map cannot change.")

    code = "seats_taken"


# --- validation ------------------------------------------------------------------------------


def check_name(name: str | None) -> str:
    """The stripped name; raises InvalidRequest when empty or too long."""
    name = (name or "").strip()
    if not name:
        raise InvalidRequest(_("The event needs a name."))
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(_("The name can be at most %(max)s characters.", max=MAX_NAME_LENGTH))
    return name


def check_future_date(date: datetime | None, now: datetime | None = None) -> None:
    if date is None:
        raise InvalidRequest(_("The event needs a date and time."))
    if date <= (now or utcnow()):
        raise InvalidRequest(_("The date must be in the future."))


def check_rows(rows: int | None) -> None:
    max_rows = current_app.config["MAX_SEAT_ROWS"]
    if rows is None or not 1 <= rows <= max_rows:
        raise InvalidRequest(_("Rows must be between 1 and %(max)s.", max=max_rows))


def check_columns(columns: int | None) -> None:
    max_columns = current_app.config["MAX_SEAT_COLUMNS"]
    if columns is None or not 1 <= columns <= max_columns:
        raise InvalidRequest(_("Columns must be between 1 and %(max)s.", max=max_columns))


def check_dimensions(rows: int, columns: int) -> None:
    check_rows(rows)
    check_columns(columns)


def check_price(price: Decimal | None, currency: str | None = None) -> None:
    """Prices are 0.00 to 10,000.00 with at most two decimals (or fewer, as the currency has)."""
    if price is None or not isinstance(price, Decimal) or not price.is_finite():
        raise InvalidRequest(_("Enter a price such as 40 or 12.50."))
    if not Decimal("0") <= price <= MAX_PRICE:
        raise InvalidRequest(_("Prices must be between 0.00 and %(max)s.", max=f"{MAX_PRICE:,.2f}"))
    try:
        exact = price == price.quantize(Decimal("0.01"))
    except InvalidOperation:
        exact = False
    if not exact:
        raise InvalidRequest(_("Prices have at most two decimals."))
    if currency:
        currencies.check_price_in(price, currency)


def check_color(color: str | None) -> None:
    if not color or not COLOR_PATTERN.match(color):
        raise InvalidRequest(_("Colours are written #rrggbb, for example #4f7cff."))


def normalize_color(color: str | None) -> str:
    """#rrggbb in lower case (#f00 becomes #ff0000), as colour inputs need it."""
    color = (color or DEFAULT_COLOR).lower()
    if len(color) == 4:
        color = "#" + "".join(char * 2 for char in color[1:])
    return color


def row_number(label: str | None) -> int:
    """A -> 1, Z -> 26, AA -> 27: the inverse of row_label; raises InvalidRequest."""
    label = (label or "").strip().upper()
    if not label or len(label) > 3 or any(char not in string.ascii_uppercase for char in label):
        raise InvalidRequest(_("'%(label)s' is not a row: rows are letters such as A, B or AA.", label=label))
    number = 0
    for char in label:
        number = number * 26 + string.ascii_uppercase.index(char) + 1
    return number


def check_categories(categories: list[CategorySpec], rows: int, currency: str | None = None) -> None:
    """At least one price; ranges inside the map, not overlapping; every row has a price."""
    if not categories:
        raise InvalidRequest(_("An event needs at least one price."))
    _check_category_names_and_prices(categories, currency)
    defaults = [c for c in categories if c.first_row is None]
    if len(defaults) > 1:
        raise InvalidRequest(_("Only one price category can cover 'all other rows' (leave its rows blank)."))
    owner = _row_owners(categories, rows)
    uncovered = [row_label(number) for number in range(1, rows + 1) if number not in owner]
    if uncovered and not defaults:
        raise InvalidRequest(
            ngettext(
                "Row %(rows)s has no price: add a category with blank rows for all other rows.",
                "Rows %(rows)s have no price: add a category with blank rows for all other rows.",
                len(uncovered),
                rows=", ".join(uncovered[:LABELS_SHOWN]) + (" …" if len(uncovered) > LABELS_SHOWN else ""),
            )
        )


def _check_category_names_and_prices(categories: list[CategorySpec], currency: str | None) -> None:
    """Every category has a name of its own, a valid price in the currency and a valid colour."""
    names = set()
    for category in categories:
        if not category.name or not category.name.strip():
            raise InvalidRequest(_("Every price category needs a name."))
        key = category.name.strip().lower()
        if key in names:
            raise InvalidRequest(_("Two price categories are called '%(name)s'.", name=category.name.strip()))
        names.add(key)
        try:
            check_price(category.price, currency)
        except InvalidRequest as error:
            raise InvalidRequest(_("'%(name)s': %(reason)s", name=category.name, reason=error.message)) from None
        check_color(category.color)


def _row_owners(categories: list[CategorySpec], rows: int) -> dict[int, CategorySpec]:
    """{row number: its category} for the categories with rows; ranges inside the map, none overlapping."""
    owner = {}
    for category in categories:
        if category.first_row is None:
            continue
        if category.last_row is None or not 1 <= category.first_row <= category.last_row <= rows:
            raise InvalidRequest(
                _(
                    "The rows of '%(name)s' must be a range within rows A-%(last)s.",
                    name=category.name,
                    last=row_label(rows),
                )
            )
        for number in range(category.first_row, category.last_row + 1):
            if number in owner:
                other = owner[number]
                raise InvalidRequest(
                    _(
                        "'%(first)s' (%(first_rows)s) and '%(second)s' (%(second_rows)s) both cover row %(row)s.",
                        first=other.name,
                        first_rows=other.rows_text(),
                        second=category.name,
                        second_rows=category.rows_text(),
                        row=row_label(number),
                    )
                )
            owner[number] = category
    return owner


def check_details(details: EventDetails, event: Event | None = None) -> str:
    """Validate everything but the date (which only the admin forms require to be in the future)."""
    name = check_name(details.name)
    if details.date is None:
        raise InvalidRequest(_("The event needs a date and time."))
    check_dimensions(details.rows, details.columns)
    zones.check_timezone(venue_timezone(details, event))
    check_categories(details.categories, details.rows, currencies.check_currency(event_currency(details, event)))
    check_on_sale_settings(details)
    return name


def venue_timezone(details: EventDetails, event: Event | None = None) -> str:
    """The zone the details name, else the event's, else the configured default."""
    return (
        details.timezone
        or (event.timezone if event is not None and event.timezone else None)
        or (current_app.config["DEFAULT_TIMEZONE"])
    )


def event_currency(details: EventDetails, event: Event | None = None) -> str:
    """The currency the details name, else the event's, else the configured default."""
    chosen = details.currency or (event.currency if event is not None and event.currency else None)
    return (chosen or current_app.config["DEFAULT_CURRENCY"]).strip().upper()


def check_on_sale_settings(details: EventDetails) -> None:
    """The on-sale time comes before the event; the room's mode is known; a fixed rate is positive."""
    if details.sales_start_at is not None and details.sales_start_at >= details.date:
        raise InvalidRequest(_("Tickets must go on sale before the event starts."))
    if details.waiting_room not in WaitingRoomMode.ALL:
        raise InvalidRequest(_("Choose how the waiting room works."))
    if details.waiting_room_rate is not None and not 1 <= details.waiting_room_rate <= 100_000:
        raise InvalidRequest(_("The admission rate is 1 to 100,000 buyers per minute, or empty for automatic."))


# --- creating --------------------------------------------------------------------------------


def create_event(
    *,
    name: str,
    date: datetime,
    rows: int,
    columns: int,
    categories: list[CategorySpec],
    description: str = "",
    venue: str = "",
    status: str = EventStatus.DRAFT,
    timezone: str | None = None,
    currency: str | None = None,
    sales_start_at: datetime | None = None,
    waiting_room: str = WaitingRoomMode.ON_SALE,
    waiting_room_rate: int | None = None,
    actor=None,
) -> Event:
    """Create an event with its price categories and seat map, in one transaction (committed)."""
    details = EventDetails(
        name,
        date,
        rows,
        columns,
        categories,
        description,
        venue,
        timezone=timezone,
        currency=currency,
        sales_start_at=sales_start_at,
        waiting_room=waiting_room,
        waiting_room_rate=waiting_room_rate,
    )

    def work():
        event = Event(status=status)
        _apply_details(event, details)
        _replace_categories(event, categories)
        db.session.add(event)
        db.session.flush()
        generate_seats(event)
        audit.record("event.created", actor=actor, subject=event, data=_audited_details(event))
        return event

    return run_unit_of_work(work)


def _audited_details(event: Event) -> dict:
    """What the audit trail keeps of an event's details (to compare before and after a change)."""
    return {
        "name": event.name,
        "date": event.date,
        "timezone": event.timezone,
        "currency": event.currency,
        "sales_start_at": event.sales_start_at,
        "waiting_room": event.waiting_room,
        "waiting_room_rate": event.waiting_room_rate,
        "venue": event.venue,
        "description": event.description,
        "rows": event.rows,
        "columns": event.columns,
        "categories": [
            [category.name, str(category.price), category.first_row, category.last_row]
            for category in event.price_categories
        ],
    }


def _changes(before: dict, after: dict) -> dict:
    return {
        key: [before[key], after[key]] for key in after if audit.jsonable(before[key]) != audit.jsonable(after[key])
    }


def _apply_details(event: Event, details: EventDetails) -> None:
    event.name = check_details(details, event)
    event.timezone = venue_timezone(details, event)
    event.currency = event_currency(details, event)
    event.date = details.date
    event.description = (details.description or "").strip()
    event.venue = (details.venue or "").strip()
    event.rows = details.rows
    event.columns = details.columns
    event.sales_start_at = details.sales_start_at
    event.waiting_room = details.waiting_room
    event.waiting_room_rate = details.waiting_room_rate


def _replace_categories(event: Event, specs: list[CategorySpec]) -> None:
    """Update the event's categories in place by position (ids stay stable), adding or dropping the rest.

    Seats of a dropped category (soft-deleted ones included: the foreign key still points at it)
    move to the category that now prices their row before it is deleted.
    """
    existing = list(event.price_categories)
    kept = []
    for position, spec in enumerate(specs):
        category = existing[position] if position < len(existing) else PriceCategory()
        category.name = spec.name.strip()
        category.price = spec.price
        category.color = normalize_color(spec.color)
        category.first_row = spec.first_row
        category.last_row = spec.last_row if spec.first_row is not None else None
        category.position = position
        kept.append(category)
    dropped = existing[len(specs) :]
    if not dropped:
        event.price_categories = kept
        return
    event.price_categories = kept + dropped
    db.session.flush()
    fallback = next((c for c in kept if c.is_default), kept[0])
    db.session.execute(
        sa.update(Seat)
        .where(Seat.price_category_id.in_([c.id for c in dropped]))
        .values(price_category_id=fallback.id)
        .execution_options(synchronize_session=False)
    )
    event.price_categories = kept
    db.session.flush()


def category_for_row(categories: list[PriceCategory], row_number: int) -> PriceCategory:
    for category in categories:
        if category.covers_row(row_number):
            return category
    return next(category for category in categories if category.is_default)


def generate_seats(event: Event) -> int:
    """Insert the event's rows x columns seats in chunked bulk inserts (not one round trip each)."""
    db.session.flush()
    now = utcnow()
    seats = [
        {
            "event_id": event.id,
            "row": row_label(row_number),
            "column": column,
            "status": SeatStatus.AVAILABLE,
            "price_category_id": category_for_row(event.price_categories, row_number).id,
            "created_at": now,
            "updated_at": now,
        }
        for row_number in range(1, event.rows + 1)
        for column in range(1, event.columns + 1)
    ]
    for start in range(0, len(seats), SEAT_INSERT_CHUNK):
        db.session.execute(sa.insert(Seat), seats[start : start + SEAT_INSERT_CHUNK])
    return len(seats)


def count_seats(event: Event) -> int:
    return db.session.scalar(sa.select(sa.func.count(Seat.id)).where(Seat.event_id == event.id))


# --- editing ---------------------------------------------------------------------------------


def _taken(now: datetime):
    """SQL condition: the seat is booked, or reserved by a hold that has not run out."""
    return sa.or_(Seat.status == SeatStatus.BOOKED, Seat.is_held(now))


def _labels_text(labels: list[str]) -> str:
    shown = ", ".join(labels[:LABELS_SHOWN])
    more = len(labels) - LABELS_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _retire_seats(event: Event, now: datetime) -> None:
    """Soft-delete the event's live seats, then check (under the write lock) none was taken."""
    retired = list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id)))
    db.session.execute(
        sa.update(Seat)
        .where(Seat.event_id == event.id, Seat.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    taken = db.session.scalars(
        sa.select(Seat)
        .where(Seat.id.in_(retired), _taken(now))
        .order_by(Seat.id)
        .execution_options(include_deleted=True)
    ).all()
    if taken:
        raise SeatsTaken(
            _(
                "The seat map cannot be regenerated while seats are held or booked (%(seats)s). Wait for holds "
                "to run out, or cancel those bookings first.",
                seats=_labels_text([seat.label for seat in taken]),
            ),
            seats=[seat.label for seat in taken],
        )


def _refuse_price_changes(event: Event, seats: list[Seat], specs: list[CategorySpec], now: datetime) -> None:
    """Held or booked seats keep their price: refuse categories that would change it."""
    old_prices = {category.id: category.price for category in event.price_categories}
    changed = []
    for seat in seats:
        if seat.is_free(now):
            continue
        number = row_number(seat.row)
        spec = next((s for s in specs if s.first_row is not None and s.first_row <= number <= s.last_row), None)
        spec = spec or next(s for s in specs if s.first_row is None)
        if spec.price != old_prices[seat.price_category_id]:
            changed.append(seat.label)
    if changed:
        raise SeatsTaken(
            _(
                "These prices would change seats that are held or booked (%(seats)s). Their price cannot change "
                "while they are sold; change only rows without sales, or cancel those bookings first.",
                seats=_labels_text(changed),
            ),
            seats=changed,
        )


def _refuse_currency_change(event: Event, currency: str) -> None:
    """An order's amounts are in its event's currency: once there is one, the currency stays."""
    if currency == event.currency:
        return
    has_orders = db.session.scalar(sa.select(Order.id).where(Order.event_id == event.id).limit(1)) is not None
    if has_orders:
        raise EventNotEditable(
            _(
                "The currency cannot change once the event has orders: their amounts are in %(currency)s.",
                currency=event.currency,
            )
        )


def _assign_categories(event: Event) -> None:
    """Point every live seat at the category that prices its row: one UPDATE per category."""
    ranged_labels = []
    default = None
    for category in event.price_categories:
        if category.is_default:
            default = category
            continue
        labels = [row_label(n) for n in range(category.first_row, category.last_row + 1)]
        ranged_labels += labels
        _set_category(event, category, Seat.row.in_(labels))
    if default is not None:
        _set_category(event, default, Seat.row.not_in(ranged_labels) if ranged_labels else sa.true())


def _set_category(event: Event, category: PriceCategory, rows_condition) -> None:
    db.session.execute(
        sa.update(Seat)
        .where(Seat.event_id == event.id, Seat.deleted_at.is_(None), rows_condition)
        .values(price_category_id=category.id)
        .execution_options(synchronize_session=False)
    )


def update_event(event: Event, details: EventDetails, *, now: datetime | None = None, actor=None) -> Event:
    """Save the admin's changes (committed): a new size regenerates the seat map, new categories re-price seats.

    Both are refused (SeatsTaken, nothing changed) when they would touch a seat that is held or booked.
    """
    check_details(details, event)
    event_id = event.id

    def work():
        moment = now or utcnow()
        locked = locking.get_locked_event(event_id)
        if locked.status == EventStatus.CANCELLED:
            raise EventNotEditable("A cancelled event can no longer be edited.")
        _refuse_currency_change(locked, event_currency(details, locked))
        resized = (details.rows, details.columns) != (locked.rows, locked.columns)
        seats = locking.lock_event_seats(event_id)
        if not resized:
            _refuse_price_changes(locked, seats, details.categories, moment)
        if resized:
            _retire_seats(locked, moment)
        before = _audited_details(locked)
        _apply_details(locked, details)
        _replace_categories(locked, details.categories)
        db.session.flush()
        audit.record(
            "event.updated", actor=actor, subject=locked, data={"changes": _changes(before, _audited_details(locked))}
        )
        room_restarts = waiting_room.on_sale_move_restarts_room(before["sales_start_at"], locked.sales_start_at, moment)
        if room_restarts:
            on_sale = {"sales_start_at": [before["sales_start_at"], locked.sales_start_at]}
            audit.record("event.waiting_room_restarted", actor=actor, subject=locked, data=on_sale, now=moment)
        if resized:
            generate_seats(locked)
        else:
            _assign_categories(locked)
        # New seats, sizes and prices: open maps load the whole map again.
        seat_changes.mark_changed(event_id, [])
        return locked, room_restarts

    saved, room_restarts = run_unit_of_work(work)
    if room_restarts:
        waiting_room.restart(event_id)  # Redis, after the commit: a rolled-back edit restarts nothing
    return saved


# --- life cycle ------------------------------------------------------------------------------


def publish_event(event: Event, now: datetime | None = None, *, actor=None) -> None:
    """Put a draft on sale: it needs a seat map and a date in the future (committed)."""
    event_id = event.id

    def work():
        moment = now or utcnow()
        # Checked on the locked row: a cancel or delete that committed meanwhile is not undone.
        locked = locking.get_locked_event(event_id, include_deleted=True)
        if locked.is_deleted:
            raise EventNotPublishable(_("This event was deleted."))
        if locked.status != EventStatus.DRAFT:
            raise EventNotPublishable(
                _("Only a draft can be published; this event is %(status)s.", status=status_label(locked.status))
            )
        if locked.date <= moment:
            raise EventNotPublishable(_("The event's date has passed; set a future date to publish it."))
        if count_seats(locked) == 0:
            raise EventNotPublishable(_("The event has no seat map yet."))
        locked.status = EventStatus.PUBLISHED
        audit.record("event.published", actor=actor, subject=locked, now=moment)
        seat_changes.mark_changed(event_id, [])

    run_unit_of_work(work)


def delete_event(event: Event, *, now: datetime | None = None, actor=None) -> None:
    """Soft-delete an event nobody holds or has booked a seat of (committed); its history stays."""
    event_id = event.id

    def work():
        moment = now or utcnow()
        locked = locking.get_locked_event(event_id)
        taken = db.session.scalar(sa.select(sa.func.count(Seat.id)).where(Seat.event_id == event_id, _taken(moment)))
        if taken:
            raise IllegalTransition(
                ngettext(
                    "%(num)d seat is held or booked: cancel the event first (that refunds its buyers), then delete it.",
                    "%(num)d seats are held or booked: cancel the event first (that refunds its buyers), "
                    "then delete it.",
                    taken,
                )
            )
        locked.soft_delete(moment)
        audit.record("event.deleted", actor=actor, subject=locked, data={"name": locked.name}, now=moment)
        seat_changes.mark_changed(event_id, [])

    run_unit_of_work(work)


def get_event(event_id: int) -> Event:
    """The (not deleted) event with this id, or NotFound."""
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound(_("No such event."))
    return event


# --- listing ---------------------------------------------------------------------------------

# "ended" is not a stored status: a published event whose date has passed (or whose sales the
# scheduled job closed) no longer sells.
LIST_FILTERS = ("draft", "published", "ended", "cancelled")


def list_query(*, status: str | None = None, search: str | None = None, now: datetime | None = None):
    """A select of events for the admin list, soonest first, filtered by status and name."""
    now = now or utcnow()
    ended = sa.or_(Event.date <= now, Event.sales_ended_at.is_not(None))
    query = sa.select(Event).order_by(Event.date, Event.id)
    if status == "published":
        query = query.where(Event.status == EventStatus.PUBLISHED, ~ended)
    elif status == "ended":
        query = query.where(Event.status == EventStatus.PUBLISHED, ended)
    elif status in EventStatus.ALL:
        query = query.where(Event.status == status)
    if search and search.strip():
        query = query.where(contains(Event.name, search.strip()))
    return query


def display_status(event: Event, now: datetime | None = None) -> str:
    """The status as the admin thinks of it: draft, published, ended or cancelled."""
    now = now or utcnow()
    if event.status == EventStatus.PUBLISHED and (event.date <= now or event.sales_ended_at is not None):
        return "ended"
    return event.status
