"""Email through an outbox: written with the change it tells of, sent by an RQ job after the commit.

`enqueue(...)` adds an OutboxEmail row to db.session inside the caller's unit of work: it never
commits and never sends, so a rolled-back change queues nothing and no seat transaction ever
waits on a mail server. Once the transaction commits, a job is queued to send the new rows; a
periodic sweep sends whatever is still due (Redis was down, or a send failed and waits out its
backoff).

Once per change: the dedupe key names the change (unique in the table), and enqueueing a key
that is already there returns the row it has. Once per row: a sender claims the row with a
conditional UPDATE and commits the claim before it talks SMTP, so two workers, or the same job
run twice, never both send it. A claim that is never settled (the worker died mid-send) lapses
after MAIL_CLAIM_SECONDS and the row is tried again: the only way a message can go out twice,
and the Message-ID, fixed per row, lets mail clients fold such a copy away.

Kinds render `templates/email/<kind with "." as "_">.txt` and `.html` at send time, in the
row's language, with the row's data as context. Other services queue their own kinds with
`enqueue(...)` and templates of their own, or the generic `notice` kind with `enqueue_notice`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from email.utils import parseaddr

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from flask_mailman import EmailMultiAlternatives

from app.extensions import db, mailman, redis_call
from app.models import (
    Booking,
    BookingStatus,
    Order,
    OrderStatus,
    OutboxEmail,
    OutboxStatus,
    PaymentStatus,
    PriceCategory,
    Seat,
    User,
    utcnow,
)
from app.services.errors import IllegalTransition, NotFound
from app.services.transactions import end_read, run_unit_of_work

log = logging.getLogger(__name__)

ORDER_CONFIRMED = "order.confirmed"
SEATS_CANCELLED = "order.seats_cancelled"
NOTICE = "notice"

_NEW_ROWS = "stagepass_outbox_new_rows"


def language_of(user: User | None) -> str:
    """The language to write to this user in: theirs when the account has one, else the default."""
    from app.i18n import LANGUAGES

    chosen = getattr(user, "language", None)
    return chosen if chosen in LANGUAGES else current_app.config["BABEL_DEFAULT_LOCALE"]


def _plain(value):
    """`value` with every lazy (translatable) string made a str, so it can be stored as JSON."""
    if isinstance(value, LazyString):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def find_email(dedupe_key: str) -> OutboxEmail | None:
    """The outbox row queued for this change, if any."""
    return db.session.scalar(sa.select(OutboxEmail).where(OutboxEmail.dedupe_key == dedupe_key))


def enqueue(
    kind: str,
    *,
    recipient: User | str,
    subject,
    dedupe_key: str,
    data: dict | None = None,
    language: str | None = None,
    order: Order | None = None,
    now: datetime | None = None,
) -> OutboxEmail:
    """Queue an email in the caller's unit of work (never commits, never sends); once per dedupe key.

    `subject` and the strings in `data` may be lazy gettext strings: they are translated here, in
    the recipient's language. A job sends the row after the caller's transaction commits.
    """
    existing = find_email(dedupe_key)
    if existing is not None:
        return existing
    if isinstance(recipient, User):
        language = language or language_of(recipient)
        address = recipient.email
    else:
        address = recipient
    language = language or current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(language):
        subject, data = str(subject), _plain(data or {})
    row = OutboxEmail(
        kind=kind,
        recipient=address,
        language=language,
        subject=" ".join(subject.split())[:255],  # one line: a newline in a header would refuse the message
        data=data,
        dedupe_key=dedupe_key,
        order=order,
        next_attempt_at=now or utcnow(),
    )
    db.session.add(row)
    db.session.info.setdefault(_NEW_ROWS, []).append(row)
    return row


def enqueue_notice(recipient: User, *, subject, paragraphs, dedupe_key: str, order: Order | None = None, now=None):
    """Queue a plain email of a few paragraphs (lazy gettext strings): the generic hook for other services."""
    return enqueue(
        NOTICE,
        recipient=recipient,
        subject=subject,
        dedupe_key=dedupe_key,
        data={"name": recipient.name, "paragraphs": list(paragraphs)},
        order=order,
        now=now,
    )


def _seat_lines(bookings) -> list[dict]:
    """Seat, category and price of each booking, read in one query (lazy loads cost a round trip each)."""
    seats = {
        seat_id: (row_label, column, category)
        for seat_id, row_label, column, category in db.session.execute(
            sa.select(Seat.id, Seat.row, Seat.column, PriceCategory.name)
            .join(PriceCategory, PriceCategory.id == Seat.price_category_id)
            .where(Seat.id.in_([booking.seat_id for booking in bookings]))
            .execution_options(include_deleted=True)
        )
    }
    return [
        {
            "seat": f"{seats[booking.seat_id][0]}{seats[booking.seat_id][1]}",
            "category": seats[booking.seat_id][2],
            "amount": booking.total_amount,
        }
        for booking in bookings
    ]


def _order_data(order: Order) -> dict:
    event = order.event
    return {
        "name": order.user.name,
        "reference": order.reference,
        "event": event.name,
        "venue": event.venue,
        "date": event.date,
        "total": order.total_amount,
        # The venue's clock and the event's money (rows queued before these existed show UTC and
        # the default currency).
        "timezone": event.timezone,
        "currency": event.currency,
    }


def enqueue_order_confirmation(order: Order, *, now: datetime | None = None, resend: bool = False) -> OutboxEmail:
    """Queue the buyer's order confirmation (tickets attached at send time); a resend gets a new key."""
    key = f"{ORDER_CONFIRMED}:{order.id}"
    if resend:
        key += f":resend:{secrets.token_hex(8)}"
    confirmed = [booking for booking in order.bookings if booking.status == BookingStatus.CONFIRMED]
    return enqueue(
        ORDER_CONFIRMED,
        recipient=order.user,
        subject=_l(
            "Your tickets for %(event)s (order %(reference)s)", event=order.event.name, reference=order.reference
        ),
        dedupe_key=key,
        data={**_order_data(order), "seats": _seat_lines(confirmed)},
        order=order,
        now=now,
    )


def enqueue_seats_cancelled(
    order: Order,
    bookings: list[Booking],
    *,
    refunded: Decimal | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> OutboxEmail | None:
    """Queue the email telling the buyer these seats were cancelled, why, and what was refunded.

    `reason` is the organiser's, shown to the buyer as written. `refunded` defaults to the price
    of those of the seats that are refunded. Nothing is queued while the order is still pending:
    its buyer was only holding the seats, with no tickets yet.
    """
    if order.status == OrderStatus.PENDING or not bookings:
        return None
    if refunded is None:
        refunded = sum(
            (booking.total_amount for booking in bookings if booking.payment_status == PaymentStatus.REFUNDED),
            Decimal("0.00"),
        )
    bookings = sorted(bookings, key=lambda booking: booking.id)
    key = f"{SEATS_CANCELLED}:{order.id}:{','.join(str(booking.id) for booking in bookings)}"
    return enqueue(
        SEATS_CANCELLED,
        recipient=order.user,
        subject=_l(
            "Seats cancelled: %(event)s (order %(reference)s)", event=order.event.name, reference=order.reference
        ),
        dedupe_key=key,
        data={**_order_data(order), "seats": _seat_lines(bookings), "refunded": refunded, "reason": reason or ""},
        order=order,
        now=now,
    )


class NothingToResend(IllegalTransition):
    """The order has no confirmation to send again."""

    code = "nothing_to_resend"


def resend_order_confirmation(order: Order, *, actor: User | None = None, now: datetime | None = None) -> OutboxEmail:
    """Admin: queue the order's confirmation again, as a new email (committed, audited; the worker sends it)."""
    from app.services import audit

    order_id = order.id

    def work():
        locked = db.session.get(Order, order_id, populate_existing=True, with_for_update=True)
        if locked is None:
            raise NotFound(_("No order with this reference."))
        if locked.status != OrderStatus.CONFIRMED:
            raise NothingToResend(
                _("Only a confirmed order has a confirmation to send; this one is %(status)s.", status=locked.status)
            )
        email = enqueue_order_confirmation(locked, now=now, resend=True)
        audit.record("order.confirmation_resent", actor=actor, subject=locked, data={"to": email.recipient}, now=now)
        return email

    return run_unit_of_work(work)


def emails_for_order(order: Order) -> list[OutboxEmail]:
    """The emails queued about an order, newest first."""
    return list(
        db.session.scalars(
            sa.select(OutboxEmail).where(OutboxEmail.order_id == order.id).order_by(OutboxEmail.id.desc())
        )
    )


# --- after the commit: queue a job for the new rows ------------------------------------------------


def init_app(app) -> None:
    """Flask-Mailman for this app, and the session hooks that queue the sending after each commit."""
    if app.config["MAIL_BACKEND"] not in BACKENDS:
        raise RuntimeError(f"MAIL_BACKEND must be one of {sorted(BACKENDS)}, not {app.config['MAIL_BACKEND']!r}")
    if app.config["MAIL_USE_TLS"] and app.config["MAIL_USE_SSL"]:
        raise RuntimeError("MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (implicit TLS) exclude each other: set one.")
    mailman.init_app(app)
    for name, hook in (("after_commit", _send_after_commit), ("after_rollback", _forget_new_rows)):
        if not sa.event.contains(so.Session, name, hook):
            sa.event.listen(so.Session, name, hook)


def _send_after_commit(session):
    rows = session.info.pop(_NEW_ROWS, None)
    if not rows:
        return
    ids = [identity[0] for row in rows if (identity := sa.inspect(row).identity) is not None]
    if ids:
        queue_sending(ids)


def _forget_new_rows(session):
    session.info.pop(_NEW_ROWS, None)


def queue_sending(outbox_ids: list[int]) -> bool:
    """Queue a job that sends these rows; False when Redis is down (the periodic sweep sends them)."""
    from app import jobs

    try:
        job = redis_call(lambda client: jobs.queue(client).enqueue(jobs.send_emails, outbox_ids, result_ttl=600))
    except Exception:  # a committed change must never fail for want of a job: the sweep sends it
        log.exception("could not queue the sending of emails %s", outbox_ids)
        return False
    return job is not None


# --- sending ---------------------------------------------------------------------------------------


def _claim(outbox_id: int, now: datetime) -> int | None:
    """Take the row for sending if it is due and nobody holds it; its attempt number, else None.

    One conditional UPDATE decides: a second worker (or the same job run again) finds the row
    claimed until the claim lapses, and updates nothing.
    """
    claimable = sa.and_(
        OutboxEmail.id == outbox_id,
        OutboxEmail.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
        OutboxEmail.next_attempt_at <= now,
    )

    def work():
        claimed = db.session.execute(
            sa.update(OutboxEmail)
            .where(claimable)
            .values(
                status=OutboxStatus.SENDING,
                attempts=OutboxEmail.attempts + 1,
                next_attempt_at=now + timedelta(seconds=current_app.config["MAIL_CLAIM_SECONDS"]),
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:
            return None
        return db.session.scalar(sa.select(OutboxEmail.attempts).where(OutboxEmail.id == outbox_id))

    return run_unit_of_work(work)


def _settle(outbox_id: int, attempt: int, values: dict) -> bool:
    """Record how the claimed attempt ended, unless the claim lapsed and another attempt took over."""

    def work():
        settled = db.session.execute(
            sa.update(OutboxEmail)
            .where(
                OutboxEmail.id == outbox_id,
                OutboxEmail.status == OutboxStatus.SENDING,
                OutboxEmail.attempts == attempt,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return settled.rowcount == 1

    return run_unit_of_work(work)


def retry_delay(attempt: int) -> timedelta:
    """How long a failed attempt waits before the next: doubling from MAIL_RETRY_SECONDS, capped."""
    config = current_app.config
    return timedelta(seconds=min(config["MAIL_RETRY_SECONDS"] * 2 ** (attempt - 1), config["MAIL_RETRY_MAX_SECONDS"]))


def send_email(outbox_id: int, *, now: datetime | None = None, connection=None) -> bool:
    """Send one due outbox row unless someone else has it; True when this call sent it.

    `connection` (from mail_connection()) lets a batch share one SMTP session.
    """
    now = now or utcnow()
    attempt = _claim(outbox_id, now)
    if attempt is None:
        return False
    connection = connection or mail_connection()
    row = db.session.get(OutboxEmail, outbox_id, populate_existing=True)
    kind = row.kind
    try:
        message = build_message(row, connection)
        end_read()  # the read is over: no transaction stays open while SMTP talks
        connection.open()  # no-op while the batch's session is open; sending then leaves it open
        message.send()
    except Exception as error:  # any failure (server down, refused, a template or attachment error) retries
        end_read()
        with contextlib.suppress(Exception):
            connection.close()  # a broken SMTP session is not reused: the next email opens a new one
        gave_up = attempt >= current_app.config["MAIL_MAX_ATTEMPTS"]
        log.warning("email %s (%s) attempt %d failed: %s", outbox_id, kind, attempt, error)
        _settle(
            outbox_id,
            attempt,
            {
                "status": OutboxStatus.FAILED if gave_up else OutboxStatus.PENDING,
                "next_attempt_at": now + retry_delay(attempt),
                "last_error": f"{type(error).__name__}: {error}"[:1000],
                "updated_at": now,
            },
        )
        return False
    _settle(
        outbox_id,
        attempt,
        {"status": OutboxStatus.SENT, "sent_at": utcnow(), "last_error": None, "updated_at": utcnow()},
    )
    return True


def due_email_ids(now: datetime, limit: int = 100) -> list[int]:
    """The rows a sweep should try now: pending and due, or claimed by a sender that never finished."""
    return list(
        db.session.scalars(
            sa.select(OutboxEmail.id)
            .where(
                OutboxEmail.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
                OutboxEmail.next_attempt_at <= now,
            )
            .order_by(OutboxEmail.next_attempt_at, OutboxEmail.id)
            .limit(limit)
        )
    )


@dataclass
class OutboxState:
    waiting: int  # pending or being sent
    oldest_due: datetime | None  # when the longest-waiting pending email was due
    failed_recently: int  # given up on in the last day


def outbox_state(now: datetime) -> OutboxState:
    """How the outbox is doing: what waits, since when, and what was given up on in the last day."""
    waiting, oldest_due = db.session.execute(
        sa.select(sa.func.count(), sa.func.min(OutboxEmail.next_attempt_at)).where(
            OutboxEmail.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING))
        )
    ).one()
    failed = db.session.scalar(
        sa.select(sa.func.count()).where(
            OutboxEmail.status == OutboxStatus.FAILED, OutboxEmail.updated_at > now - timedelta(days=1)
        )
    )
    return OutboxState(waiting, oldest_due if oldest_due is not None and oldest_due <= now else None, failed)


def send_due_emails(*, now: datetime | None = None, ids: list[int] | None = None) -> int:
    """Send the given rows (or every due row) that nobody else is sending; how many went out."""
    now = now or utcnow()
    ids = due_email_ids(now) if ids is None else ids
    end_read()  # no read transaction stays open while SMTP talks
    connection = mail_connection()
    try:
        return sum(send_email(outbox_id, now=now, connection=connection) for outbox_id in ids)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


# --- building messages -----------------------------------------------------------------------------

# MAIL_BACKEND -> the Flask-Mailman backend that does it.
BACKENDS = {
    "smtp": "smtp",
    "file": "app.mail_backends.EmlFileEmailBackend",
    "console": "console",
}


def mail_connection():
    """A Flask-Mailman connection for MAIL_BACKEND, with the settings the app has now."""
    config = current_app.config
    backend = config["MAIL_BACKEND"]
    if backend == "smtp":
        return mailman.get_connection(
            backend="smtp",
            host=config["MAIL_SERVER"],
            port=config["MAIL_PORT"],
            username=config["MAIL_USERNAME"] or "",
            password=config["MAIL_PASSWORD"] or "",
            use_tls=config["MAIL_USE_TLS"],
            use_ssl=config["MAIL_USE_SSL"],
            timeout=config["MAIL_TIMEOUT"],
        )
    if backend == "file":
        return mailman.get_connection(backend=BACKENDS["file"], file_path=config["MAIL_FILE_PATH"])
    return mailman.get_connection(backend=BACKENDS[backend])


def message_id(row: OutboxEmail) -> str:
    """The Message-ID of a row: the same on every attempt, so a copy sent twice can be recognised."""
    digest = hashlib.sha256(row.dedupe_key.encode()).hexdigest()[:16]
    domain = parseaddr(current_app.config["MAIL_DEFAULT_SENDER"])[1].rpartition("@")[2] or "stagepass.invalid"
    return f"<outbox.{row.id}.{digest}@{domain}>"


def _context(row: OutboxEmail) -> dict:
    context = dict(row.data)
    if isinstance(context.get("date"), str):
        context["date"] = datetime.fromisoformat(context["date"])
    return {**context, "subject": row.subject, "kind": row.kind}


def _attachments(row: OutboxEmail) -> list[tuple[str, bytes, str]]:
    """Files the email carries, made at send time (name, content, MIME type).

    A confirmation carries the order's tickets PDF as the tickets are when it is sent: a seat
    cancelled meanwhile is left out, and an order with no valid ticket left gets no PDF.
    """
    from app.services import tickets

    if row.kind != ORDER_CONFIRMED or row.order_id is None:
        return []
    order = db.session.get(Order, row.order_id)
    try:
        pdf = tickets.pdf_for_order(order)
    except tickets.NoTickets:
        return []
    return [(f"tickets-{order.reference}.pdf", pdf, "application/pdf")]


def build_message(row: OutboxEmail, connection=None) -> EmailMultiAlternatives:
    """The email of an outbox row: text and HTML rendered in its language, with its attachments."""
    template = "email/" + row.kind.replace(".", "_")
    context = _context(row)
    with force_locale(row.language):
        attachments = _attachments(row)
        context["attached"] = [name for name, _content, _mimetype in attachments]
        text = render_template(f"{template}.txt", **context)
        html = render_template(f"{template}.html", **context)
    message = EmailMultiAlternatives(
        subject=row.subject,
        body=text,
        to=[row.recipient],
        connection=connection or mail_connection(),
        headers={"Message-ID": message_id(row)},
    )
    message.attach_alternative(html, "text/html")
    for name, content, mimetype in attachments:
        message.attach(name, content, mimetype)
    return message
