"""The audit trail: `record(...)` adds a line inside the caller's unit of work; nothing changes one.

Each admin action, money movement, check-in undo and permission change calls `record` in the same
unit of work as the change itself, so the line and the change commit or roll back together; it
never commits. Actions are dotted names, subject first: `order.refunded`, `event.published`,
`user.admin_granted`. An actor of None is the system (a job), named by `actor_label` such as
"job:release-expired-holds".

Append-only, twice over (wired by `register` from the app factory): the ORM refuses to flush a
change or deletion of an AuditEntry, and every engine refuses UPDATE, DELETE, REPLACE and TRUNCATE
statements on audit_log, whether they come from the ORM, Core or plain SQL. The only way past is a
connection carrying `APPEND_ONLY_BYPASS`, which only the tests' table emptying uses.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext as _

from app.extensions import db
from app.models import AuditEntry, Event, utcnow
from app.services.errors import InvalidRequest
from app.services.querying import contains, starts_with

SYSTEM_LABEL = "system"
# Execution option that lets one connection rewrite audit_log: emptying the test database only.
APPEND_ONLY_BYPASS = {"audit_log_maintenance": True}

_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
# The statements that rewrite rows, aimed at audit_log (quoted or not, with a schema or not).
_REWRITE_OF_AUDIT_LOG = re.compile(
    r"^\s*(UPDATE|DELETE\s+FROM|DELETE|REPLACE\s+INTO|REPLACE|TRUNCATE\s+TABLE|TRUNCATE)\s+"
    r"(?:[`\"\[]?\w+[`\"\]]?\.)?[`\"\[]?audit_log\b",
    re.IGNORECASE,
)


class AuditLogIsAppendOnlyError(RuntimeError):
    """Something tried to change or delete a line of the audit trail (a bug, never user input)."""


def job_label(name: str) -> str:
    """The actor label of a background job: job_label("cancel-event") -> "job:cancel-event"."""
    return f"job:{name}"


def record(
    action: str,
    *,
    actor=None,
    subject=None,
    data: dict[str, Any] | None = None,
    actor_label: str | None = None,
    event_id: int | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Add an audit line to db.session, in the caller's unit of work (never commits)."""
    if not _ACTION.match(action or ""):
        raise ValueError(f"audit action must be dotted lower-case words, not {action!r}")
    if actor is not None and not getattr(actor, "is_authenticated", True):
        actor = None  # an anonymous visitor is nobody we can name
    if subject is not None and getattr(subject, "id", None) is None:
        db.session.flush()  # a subject created in this unit of work gets its id
    entry = AuditEntry(
        created_at=now or utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_label=(actor_label or (actor.email if actor is not None else SYSTEM_LABEL))[:255],
        action=action,
        subject_type=subject_type_of(subject),
        subject_id=getattr(subject, "id", None),
        event_id=event_id if event_id is not None else _event_id_of(subject),
        data=jsonable(data or {}),
    )
    db.session.add(entry)
    return entry


def subject_type_of(subject) -> str | None:
    """ "order" for an Order, "price_category" for a PriceCategory; None without a subject."""
    if subject is None:
        return None
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(subject).__name__).lower()


def _event_id_of(subject) -> int | None:
    if isinstance(subject, Event):
        return subject.id
    return getattr(subject, "event_id", None)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(value) if isinstance(value, (set, frozenset)) else list(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"audit data cannot hold {type(value).__name__}")


def jsonable(data):
    """The details as plain JSON (Decimal as a string, datetimes in ISO form), checked now."""
    return json.loads(json.dumps(data, default=_plain))


# --- append-only ----------------------------------------------------------------------------------


def _refuse_orm_change(_mapper, _connection, entry):
    raise AuditLogIsAppendOnlyError(f"audit entry {entry.id} cannot be changed or deleted")


def _refuse_rewrite(connection, _cursor, statement, _parameters, context, _executemany):
    if not _REWRITE_OF_AUDIT_LOG.match(statement):
        return
    options = context.execution_options if context is not None else connection.get_execution_options()
    if not options.get("audit_log_maintenance"):
        raise AuditLogIsAppendOnlyError(f"audit_log is append-only: refused {statement.split()[0].upper()}")


def register(_app=None) -> None:
    """Install the append-only guards (once per process, whatever the number of apps)."""
    for event_name in ("before_update", "before_delete"):
        if not sa.event.contains(AuditEntry, event_name, _refuse_orm_change):
            sa.event.listen(AuditEntry, event_name, _refuse_orm_change)
    if not sa.event.contains(sa.engine.Engine, "before_cursor_execute", _refuse_rewrite):
        sa.event.listen(sa.engine.Engine, "before_cursor_execute", _refuse_rewrite)


# --- reading --------------------------------------------------------------------------------------


@dataclass
class AuditFilters:
    """What the admin narrows the trail to; empty fields do not filter."""

    action: str = ""  # a prefix: "order." or "order.refunded"
    actor: str = ""  # part of the actor's label: an email, "job:", "system"
    event_id: int | None = None
    since: date | None = None  # from this day on (UTC)
    until: date | None = None  # up to and including this day (UTC)


def parse_day(text: str | None) -> date | None:
    """A YYYY-MM-DD day, None when blank; InvalidRequest otherwise."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(_("%(text)s is not a date: use YYYY-MM-DD.", text=repr(text[:20]))) from None


def entries_query(filters: AuditFilters) -> sa.Select:
    """The trail's lines that match, newest first."""
    query = sa.select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    if filters.action.strip():
        query = query.where(starts_with(AuditEntry.action, filters.action.strip().lower()))
    if filters.actor.strip():
        query = query.where(contains(AuditEntry.actor_label, filters.actor.strip()))
    if filters.event_id is not None:
        query = query.where(AuditEntry.event_id == filters.event_id)
    if filters.since is not None:
        query = query.where(AuditEntry.created_at >= datetime.combine(filters.since, time.min))
    if filters.until is not None:
        query = query.where(AuditEntry.created_at < datetime.combine(filters.until + timedelta(days=1), time.min))
    return query


CSV_HEADER = [
    "id",
    "created_at_utc",
    "actor_id",
    "actor",
    "action",
    "subject_type",
    "subject_id",
    "event_id",
    "data",
]
# A spreadsheet would run a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_BATCH = 500


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, sort_keys=True)
        if isinstance(value, dict)
        else str(value)
    )
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def entries_csv(filters: AuditFilters) -> Iterator[str]:
    """The matching lines as CSV text, header first, read and written in batches (times in UTC)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    query = entries_query(filters).execution_options(yield_per=CSV_BATCH)
    for count, entry in enumerate(db.session.scalars(query), start=1):
        writer.writerow(
            _csv_cell(value)
            for value in (
                entry.id,
                entry.created_at,
                entry.actor_id,
                entry.actor_label,
                entry.action,
                entry.subject_type,
                entry.subject_id,
                entry.event_id,
                entry.data,
            )
        )
        if count % CSV_BATCH == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()
