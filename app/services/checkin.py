"""Checking tickets in at the door: each ticket is admitted once, and the database decides which scan.

A scan is a signed QR payload (verified with the ticket signing keys' public halves) or a typed
code (normalised the Crockford way). Admission is one conditional UPDATE of the ticket row
(`... WHERE checked_in_at IS NULL AND revoked_at IS NULL`): of two doors scanning the same ticket
in the same instant, the one whose UPDATE changes the row admits it, the other reads who did.
Nothing else is locked, so check-in never waits on seat transactions.

Scans a door accepted while offline are sent later with offline=True; if the ticket was already
admitted (or voided) by then, the clash is recorded as a CheckinConflict for the admins, never
dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_babel import gettext as _

from app.extensions import db
from app.models import CheckinConflict, Event, PriceCategory, Seat, Ticket, User
from app.services import audit, tickets
from app.services.errors import DomainError, InvalidRequest, NotFound
from app.services.transactions import run_unit_of_work

ADMITTED = "admitted"
ALREADY_CHECKED_IN = "already_checked_in"
VOID = "void"
WRONG_EVENT = "wrong_event"
INVALID = "invalid"

HTTP_STATUS = {ADMITTED: 200, ALREADY_CHECKED_IN: 409, VOID: 410, WRONG_EVENT: 422, INVALID: 404}

MAX_DOOR_LENGTH = 64
MAX_PAYLOAD_LENGTH = 200
PAYLOAD_PREFIX = "SP1."


@dataclass
class Scan:
    """What a scan found: the result, a sentence for the person at the door, and the ticket if any."""

    result: str
    message: str
    ticket: TicketAtDoor | None = None
    checked_in_at: datetime | None = None
    door: str | None = None
    conflict: bool = False
    details: dict = field(default_factory=dict)
    seat: str | None = None  # read inside the unit of work: the answer needs no query after the commit
    category: str | None = None
    counts: dict | None = None  # the door's counters, when the scan read them (its own event's ticket)

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.result]


@dataclass
class TicketAtDoor:
    """What the door needs of a ticket, read as plain columns: no ORM objects on the hot path."""

    id: int
    event_id: int
    code: str
    revoked_at: datetime | None
    revoked_reason: str | None
    checked_in_at: datetime | None
    checked_in_door: str | None
    seat: str
    category: str
    event_deleted: bool
    sold: int  # valid tickets of its event, and how many of them are in, as this scan read them
    checked_in: int

    @property
    def is_void(self) -> bool:
        return self.revoked_at is not None


class NotCheckedIn(DomainError):
    """This ticket is not checked in."""

    code = "not_checked_in"
    status = 409


def get_door_event(event_id: int) -> Event:
    """The event whose door this is; a deleted or unknown event is a 404."""
    event = db.session.get(Event, event_id)
    if event is None or event.is_deleted:
        raise NotFound(_("No such event."))
    return event


def clean_door(door) -> str:
    """The door's name as stored: stripped, 1 to 64 characters."""
    if not isinstance(door, str) or not door.strip():
        raise InvalidRequest(_("Name the door (for example “Main entrance”)."))
    door = " ".join(door.split())
    if len(door) > MAX_DOOR_LENGTH:
        raise InvalidRequest(_("A door name has at most %(n)s characters.", n=MAX_DOOR_LENGTH))
    return door


def find_ticket(payload_or_code: str) -> TicketAtDoor | None:
    """The ticket a scanned payload or typed code names, with its seat and category, or None
    (forged, garbled, unknown)."""
    text = payload_or_code.strip()
    if not text or len(text) > MAX_PAYLOAD_LENGTH:
        return None
    if text.upper().startswith(PAYLOAD_PREFIX):
        try:
            _kid, event_id, code = tickets.verify_payload(text)
        except tickets.InvalidTicket:
            return None
    else:
        event_id, code = None, tickets.normalise_code(text)
        if not tickets.is_code(code):
            return None
    row = db.session.execute(
        sa.select(*DOOR_COLUMNS)
        .join(Seat, Seat.id == Ticket.seat_id)
        .join(PriceCategory, PriceCategory.id == Seat.price_category_id)
        .join(Event, Event.id == Ticket.event_id)
        .where(Ticket.code == code)
        .execution_options(include_deleted=True)  # the seat of a sold ticket may since be replaced
    ).one_or_none()
    if row is None or (event_id is not None and row.event_id != int(event_id)):
        return None
    return TicketAtDoor(
        *row[:7],
        seat=f"{row.row}{row.column}",
        category=row.name,
        event_deleted=row.deleted_at is not None,
        sold=row.sold,
        checked_in=row.checked_in,
    )


_event_ticket = so.aliased(Ticket)
_valid_of_same_event = sa.and_(_event_ticket.event_id == Ticket.event_id, _event_ticket.revoked_at.is_(None))
# One row answers the whole scan: the ticket, its seat and category, whether its event is gone,
# and the event's counters (correlated counts over the tickets' event_id index).
DOOR_COLUMNS = (
    Ticket.id,
    Ticket.event_id,
    Ticket.code,
    Ticket.revoked_at,
    Ticket.revoked_reason,
    Ticket.checked_in_at,
    Ticket.checked_in_door,
    Seat.row,
    Seat.column,
    PriceCategory.name,
    Event.deleted_at,
    sa.select(sa.func.count(_event_ticket.id)).where(_valid_of_same_event).scalar_subquery().label("sold"),
    sa.select(sa.func.count(_event_ticket.checked_in_at))
    .where(_valid_of_same_event)
    .scalar_subquery()
    .label("checked_in"),
)


def require_door(event_id: int) -> None:
    """404 unless the event exists and is not deleted (one narrow query: the check-in hot path)."""
    found = db.session.scalar(
        sa.select(Event.id)
        .where(Event.id == event_id, Event.deleted_at.is_(None))
        .execution_options(include_deleted=True)
    )
    if found is None:
        raise NotFound(_("No such event."))


def check_in(
    payload_or_code: str,
    event_id: int,
    door: str,
    staff: User,
    now: datetime,
    scanned_at: datetime | None = None,
    offline: bool = False,
) -> Scan:
    """Check a scanned payload or typed code in at this event's door; admitted at most once."""
    door = clean_door(door)
    admitted_at = min(scanned_at, now) if offline and scanned_at is not None else now

    def work():
        ticket = find_ticket(payload_or_code)
        if ticket is None or ticket.event_id != event_id or ticket.event_deleted:
            require_door(event_id)  # else the ticket's own row showed that this door's event is there
        if ticket is None:
            return Scan(INVALID, _("Not a StagePass ticket: the code is unknown, garbled or forged."))
        if ticket.event_id != event_id:
            return wrong_event(ticket)
        # Its event is this door's, which exists: void means revoked (refunded or cancelled).
        if ticket.is_void:
            return record_if_offline(void(ticket), ticket)
        admitted = db.session.execute(
            sa.update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.checked_in_at.is_(None), Ticket.revoked_at.is_(None))
            .values(checked_in_at=admitted_at, checked_in_door=door, checked_in_by_id=staff.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if admitted == 1:
            ticket.checked_in += 1
            return with_seat(Scan(ADMITTED, admitted_message(ticket), ticket, admitted_at, door), ticket)
        read_what_won(ticket)
        if ticket.is_void:
            return record_if_offline(void(ticket), ticket)
        return record_if_offline(already_checked_in(ticket), ticket)

    def record_if_offline(scan: Scan, ticket: TicketAtDoor) -> Scan:
        if offline:
            db.session.add(
                CheckinConflict(
                    event_id=event_id,
                    ticket_id=ticket.id,
                    door=door,
                    staff_id=staff.id,
                    scanned_at=admitted_at,
                    result=scan.result,
                    first_checked_in_at=ticket.checked_in_at,
                    first_door=ticket.checked_in_door,
                    created_at=now,
                )
            )
            scan.conflict = True
        return with_seat(scan, ticket)

    return run_unit_of_work(work)


def read_what_won(ticket: TicketAtDoor) -> None:
    """Another scan's UPDATE won: take in what it wrote (committed, as READ COMMITTED shows it)."""
    won = db.session.execute(
        sa.select(Ticket.checked_in_at, Ticket.checked_in_door, Ticket.revoked_at, Ticket.revoked_reason).where(
            Ticket.id == ticket.id
        )
    ).one()
    if ticket.checked_in_at is None and won.checked_in_at is not None:
        ticket.checked_in += 1  # the winner committed after this scan read the counters
    ticket.checked_in_at, ticket.checked_in_door, ticket.revoked_at, ticket.revoked_reason = won


def with_seat(scan: Scan, ticket: TicketAtDoor) -> Scan:
    scan.seat, scan.category = ticket.seat, ticket.category
    scan.counts = {"checked_in": ticket.checked_in, "sold": ticket.sold}
    return scan


def seat_text(ticket: TicketAtDoor) -> str:
    return _("Seat %(seat)s, %(category)s", seat=ticket.seat, category=ticket.category)


def admitted_message(ticket: TicketAtDoor) -> str:
    return _("Admitted. %(seat)s.", seat=seat_text(ticket))


def already_checked_in(ticket: TicketAtDoor) -> Scan:
    at = ticket.checked_in_at
    message = _(
        "Already checked in at %(time)s UTC at door “%(door)s”.",
        time=at.strftime("%H:%M:%S"),
        door=ticket.checked_in_door or "?",
    )
    return Scan(ALREADY_CHECKED_IN, message, ticket, at, ticket.checked_in_door)


def void(ticket: TicketAtDoor) -> Scan:
    if ticket.revoked_reason:
        message = _("Void: %(reason)s.", reason=ticket.revoked_reason)
    else:
        message = _("Void: this ticket was refunded or cancelled.")
    return Scan(VOID, message, ticket, ticket.checked_in_at, ticket.checked_in_door)


def wrong_event(ticket: TicketAtDoor) -> Scan:
    other = db.session.execute(
        sa.select(Event).where(Event.id == ticket.event_id).execution_options(include_deleted=True)
    ).scalar_one_or_none()
    name = other.name if other is not None else "?"
    if other is not None and other.is_deleted:
        message = _("Wrong event: this ticket is for “%(name)s”, which was deleted.", name=name)
    else:
        message = _("Wrong event: this ticket is for “%(name)s”.", name=name)
    return Scan(WRONG_EVENT, message, ticket, details={"ticket_event": name})


def undo_check_in(ticket_id: int, event_id: int, admin: User, now: datetime) -> Ticket:
    """An admin takes a check-in back (a mistaken scan): the ticket can be admitted again."""

    def work():
        ticket = db.session.get(Ticket, ticket_id)
        if ticket is None or ticket.event_id != event_id:
            raise NotFound(_("No such ticket at this event."))
        undone = db.session.execute(
            sa.update(Ticket)
            .where(Ticket.id == ticket.id, Ticket.checked_in_at.is_not(None))
            .values(checked_in_at=None, checked_in_door=None, checked_in_by_id=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if undone != 1:
            raise NotCheckedIn(_("This ticket is not checked in."))
        audit.record(
            "checkin.undone",
            actor=admin,
            subject=ticket,
            data={"code": ticket.code, "checked_in_at": ticket.checked_in_at, "door": ticket.checked_in_door},
            now=now,
        )
        db.session.refresh(ticket)
        return ticket

    return run_unit_of_work(work)


def counts(event_id: int) -> dict:
    """Tickets of the event checked in, and sold (valid tickets), for the door's counters."""
    row = db.session.execute(
        sa.select(
            sa.func.count(Ticket.id),
            sa.func.count(Ticket.checked_in_at),
        ).where(Ticket.event_id == event_id, Ticket.revoked_at.is_(None))
    ).one()
    return {"checked_in": int(row[1]), "sold": int(row[0])}


def counts_by_event(event_ids: list[int]) -> dict[int, dict]:
    """counts() for several events in one query."""
    if not event_ids:
        return {}
    rows = db.session.execute(
        sa.select(Ticket.event_id, sa.func.count(Ticket.id), sa.func.count(Ticket.checked_in_at))
        .where(Ticket.event_id.in_(event_ids), Ticket.revoked_at.is_(None))
        .group_by(Ticket.event_id)
    ).all()
    found = {event_id: {"checked_in": int(done), "sold": int(sold)} for event_id, sold, done in rows}
    return {event_id: found.get(event_id, {"checked_in": 0, "sold": 0}) for event_id in event_ids}


def conflicts(event_id: int, limit: int = 100) -> list[CheckinConflict]:
    """Offline scans that met an earlier check-in or a void ticket, newest first."""
    return list(
        db.session.scalars(
            sa.select(CheckinConflict)
            .where(CheckinConflict.event_id == event_id)
            .order_by(CheckinConflict.id.desc())
            .limit(limit)
        )
    )


def latest_check_ins(event_id: int, limit: int = 20) -> list[Ticket]:
    """The event's most recent check-ins, for the admin event page (and undoing a mistaken one)."""
    return list(
        db.session.scalars(
            sa.select(Ticket)
            .where(Ticket.event_id == event_id, Ticket.checked_in_at.is_not(None))
            .order_by(Ticket.checked_in_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
    )


def parse_scanned_at(value) -> datetime | None:
    """An ISO 8601 time from the door (with or without zone; none means UTC) as naive UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidRequest(_("scanned_at must be an ISO 8601 time, like 2026-12-07T20:15:00Z."))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidRequest(_("scanned_at must be an ISO 8601 time, like 2026-12-07T20:15:00Z.")) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed
