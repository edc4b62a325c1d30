"""The waiting list: buyers queue for a sold-out event, and seats that free up go to the first
entry they fit, held for that buyer as an offer (a pending order) for WAITLIST_OFFER_MINUTES.

Lock order, the booking service's one step longer: the event row, seats in ascending id, orders,
bookings, then the event's `waitlists` row. The offer step runs inside the unit of work that freed
the seats, with those seat rows still locked, so nobody can take a freed seat between the freeing
and the offer: a public hold waits for the seat lock and then finds the seat offered.

The queue: seats freed together are offered to waiting entries in the order they joined; an
entry they cannot serve (too few, another category, not side by side, the buyer has a checkout
open for the event) is passed over and keeps its place. Seats no entry can use stay on sale.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app, has_request_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (
    Booking,
    Event,
    Order,
    OrderStatus,
    PriceCategory,
    Seat,
    SeatStatus,
    User,
    Waitlist,
    WaitlistEntry,
    WaitlistStatus,
    utcnow,
)
from app.services import audit, locking, mail, seat_changes, seatmap
from app.services.errors import DomainError, InvalidRequest, NotFound
from app.services.transactions import Conflict, run_unit_of_work

ANY_CATEGORY = "any"
PARTY_SIZE_TEXT = re.compile("[0-9]{1,3}")


class AlreadyWaiting(DomainError):
    code = "already_waiting"


class SeatsStillFree(DomainError):
    code = "seats_free"


class WaitlistClosed(DomainError):
    code = "waitlist_closed"


class InvalidParty(InvalidRequest):
    code = "invalid_party"


class UnknownCategory(InvalidRequest):
    code = "unknown_category"


class EntryNotFound(NotFound):
    code = "entry_not_found"


class EntryNotOpen(DomainError):
    code = "entry_not_open"


class OfferNotOpen(DomainError):
    code = "offer_not_open"


# --- reading ---------------------------------------------------------------------------------


def is_list_open(event_id: int) -> bool:
    """Whether the event's list takes entries (a list nobody has joined yet is open)."""
    is_open = db.session.scalar(sa.select(Waitlist.is_open).where(Waitlist.event_id == event_id))
    return is_open is None or bool(is_open)


def events_with_waiting(event_ids) -> set[int]:
    """Of these events, those with at least one entry waiting for seats."""
    event_ids = list(set(event_ids))
    if not event_ids:
        return set()
    return set(
        db.session.scalars(
            sa.select(WaitlistEntry.event_id)
            .where(WaitlistEntry.event_id.in_(event_ids), WaitlistEntry.status == WaitlistStatus.WAITING)
            .distinct()
        )
    )


def _free_condition(event_id: int, now: datetime):
    """Seats a public buyer can take now: an expired hold is free, unless the list waits for it."""
    expired_hold = sa.and_(Seat.status == SeatStatus.RESERVED, Seat.reservation_expires_at <= now)
    if event_id in events_with_waiting([event_id]):
        return Seat.status == SeatStatus.AVAILABLE
    return sa.or_(Seat.status == SeatStatus.AVAILABLE, expired_hold)


def free_seat_counts(event: Event, now: datetime | None = None) -> dict[int, int]:
    """Seats on public sale per price category id (categories with none are left out)."""
    now = now or utcnow()
    rows = db.session.execute(
        sa.select(Seat.price_category_id, sa.func.count(Seat.id))
        .where(Seat.event_id == event.id, _free_condition(event.id, now))
        .group_by(Seat.price_category_id)
    )
    return dict(rows.all())


def can_join(event: Event, now: datetime | None = None) -> bool:
    """The event page offers the list: on sale, list open, and some category without free seats."""
    now = now or utcnow()
    if not event.is_on_sale(now) or not is_list_open(event.id):
        return False
    free = free_seat_counts(event, now)
    return any(free.get(category.id, 0) == 0 for category in event.price_categories)


def open_entry_for(user: User, event: Event) -> WaitlistEntry | None:
    """The buyer's waiting or offered entry for this event, if any."""
    return db.session.scalar(
        sa.select(WaitlistEntry).where(
            WaitlistEntry.user_id == user.id,
            WaitlistEntry.event_id == event.id,
            WaitlistEntry.status.in_(WaitlistStatus.OPEN),
        )
    )


def position(entry: WaitlistEntry) -> int:
    """The entry's place in the queue (1 = next), counting open entries that joined before it."""
    return 1 + db.session.scalar(
        sa.select(sa.func.count(WaitlistEntry.id)).where(
            WaitlistEntry.event_id == entry.event_id,
            WaitlistEntry.status.in_(WaitlistStatus.OPEN),
            WaitlistEntry.id < entry.id,
        )
    )


def entries_of(user: User) -> list[WaitlistEntry]:
    """The buyer's entries, newest first, with their events and offers."""
    return list(
        db.session.scalars(
            sa.select(WaitlistEntry)
            .where(WaitlistEntry.user_id == user.id)
            .order_by(WaitlistEntry.id.desc())
            .options(
                so.joinedload(WaitlistEntry.event),
                so.joinedload(WaitlistEntry.price_category),
                so.joinedload(WaitlistEntry.offer_order),
            )
        )
    )


def entries_for_admin(event: Event) -> list[WaitlistEntry]:
    """Every entry of the event in queue order (open ones first), with buyer, category and offer."""
    return list(
        db.session.scalars(
            sa.select(WaitlistEntry)
            .where(WaitlistEntry.event_id == event.id)
            .order_by(WaitlistEntry.status.not_in(WaitlistStatus.OPEN), WaitlistEntry.id)
            .options(
                so.joinedload(WaitlistEntry.user),
                so.joinedload(WaitlistEntry.price_category),
                so.joinedload(WaitlistEntry.offer_order),
            )
        )
    )


def counts(event: Event, now: datetime | None = None) -> dict[str, int]:
    """Entries per state as of now (an offer past its limit counts as expired)."""
    now = now or utcnow()
    result = dict.fromkeys(WaitlistStatus.ALL, 0)
    for entry in db.session.scalars(sa.select(WaitlistEntry).where(WaitlistEntry.event_id == event.id)):
        result[entry.state_at(now)] += 1
    return result


def find_entry(entry_id: int, event: Event | None = None) -> WaitlistEntry:
    """The entry with this id (of this event, if given), or EntryNotFound."""
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or (event is not None and entry.event_id != event.id):
        raise EntryNotFound(_("No such waiting list entry."))
    return entry


def find_entry_for_user(entry_id: int, user: User) -> WaitlistEntry:
    """The buyer's own entry; someone else's is 'not found', never 'forbidden'."""
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or entry.user_id != user.id:
        raise EntryNotFound(_("No such waiting list entry."))
    return entry


def entries_csv(event: Event, now: datetime | None = None) -> str:
    """The event's list as CSV (times in UTC), in queue order."""
    now = now or utcnow()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["position", "entry", "buyer", "email", "party", "category", "together", "since", "state", "offer"])
    place = 0
    for entry in entries_for_admin(event):
        place += entry.is_open
        writer.writerow(
            [
                place if entry.is_open else "",
                entry.id,
                _cell(entry.user.name),
                _cell(entry.user.email),
                entry.party_size,
                _cell(entry.price_category.name) if entry.price_category else "any",
                "yes" if entry.together else "no",
                entry.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                entry.state_at(now),
                entry.offer_order.reference if entry.offer_order else "",
            ]
        )
    return out.getvalue()


def _cell(value: str) -> str:
    """A text cell a spreadsheet will not run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


# --- joining and leaving ---------------------------------------------------------------------


def parse_party_size(value) -> int:
    """A party size from 1 to MAX_SEATS_PER_ORDER: a whole number or a string of ASCII digits."""
    limit = current_app.config["MAX_SEATS_PER_ORDER"]
    if isinstance(value, str) and PARTY_SIZE_TEXT.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise InvalidParty(_("Party size must be a whole number from 1 to %(limit)s.", limit=limit), limit=limit)
    return value


def _category_id(event: Event, category) -> int | None:
    if category in (None, "", ANY_CATEGORY):
        return None
    ids = {str(c.id): c.id for c in event.price_categories}
    if str(category) not in ids:
        raise UnknownCategory(_("Choose one of this event's price categories, or any."))
    return ids[str(category)]


def _ensure_waitlist(event_id: int) -> None:
    """Create the event's list row once (its own short unit of work; a racing creator wins)."""
    if db.session.scalar(sa.select(Waitlist.id).where(Waitlist.event_id == event_id)) is not None:
        return

    def create():
        db.session.add(Waitlist(event_id=event_id))
        db.session.flush()

    with contextlib.suppress(IntegrityError):
        run_unit_of_work(create)


def _check_can_join(event: Event, user: User, category_id: int | None, moment: datetime, is_open: bool) -> None:
    """Refuse a join that cannot be: the list closed, the buyer already waiting, seats still free."""
    if not is_open:
        raise WaitlistClosed(_("The waiting list for this event is closed."))
    if open_entry_for(user, event) is not None:
        raise AlreadyWaiting(_("You are already on the waiting list for this event."))
    free = free_seat_counts(event, moment)
    free_here = sum(free.values()) if category_id is None else free.get(category_id, 0)
    if free_here:
        raise SeatsStillFree(
            _("Seats are still free for this event: choose them on the seat map."), free_seats=free_here
        )


def _lock_waitlist(event_id: int) -> Waitlist | None:
    return db.session.scalar(
        sa.select(Waitlist)
        .where(Waitlist.event_id == event_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def join(
    user: User, event: Event, *, party_size, category=None, together: bool = False, now: datetime | None = None
) -> WaitlistEntry:
    """Put the buyer on the event's list: party size, a category or any, side by side or not."""
    from app.services import booking

    size = parse_party_size(party_size)
    category_id = _category_id(event, category)
    event_id, user_id = event.id, user.id
    # The same checks without locks first, so a refused join writes nothing (not even the list's row);
    # they are made again under the locks below, which decide.
    moment = now or utcnow()
    booking._check_on_sale(event, moment)
    existing = db.session.scalar(sa.select(Waitlist).where(Waitlist.event_id == event_id))
    _check_can_join(event, user, category_id, moment, existing is None or existing.is_open)
    _ensure_waitlist(event_id)

    def work():
        moment = now or utcnow()
        booking._check_on_sale(locking.lock_event(event_id, shared=True), moment)
        _check_can_join(event, user, category_id, moment, _lock_waitlist(event_id).is_open)
        entry = WaitlistEntry(
            event_id=event_id,
            user_id=user_id,
            party_size=size,
            price_category_id=category_id,
            together=bool(together),
            created_at=moment,
            updated_at=moment,
        )
        db.session.add(entry)
        db.session.flush()
        return entry

    try:
        return run_unit_of_work(work)
    except IntegrityError:
        # Only reachable where row locks do not exist (SQLite): the unique key decided the race.
        raise AlreadyWaiting(_("You are already on the waiting list for this event.")) from None


def leave(entry: WaitlistEntry, *, user: User, now: datetime | None = None) -> WaitlistEntry:
    """The buyer leaves the list; an open offer is declined and its seats go to the next entry."""
    if entry.user_id != user.id:
        raise EntryNotFound(_("No such waiting list entry."))
    if entry.status == WaitlistStatus.OFFERED:
        return decline(entry, user=user, now=now)
    return _end_waiting(entry.id, WaitlistStatus.LEFT, now)


def skip(entry: WaitlistEntry, *, actor: User | None = None, now: datetime | None = None) -> WaitlistEntry:
    """Admin: take a waiting entry off the list (an entry with an offer: end the offer first)."""
    return _end_waiting(entry.id, WaitlistStatus.SKIPPED, now, actor=actor)


def _end_waiting(entry_id: int, status: str, now: datetime | None, *, actor: User | None = None) -> WaitlistEntry:
    event_id = db.session.get(WaitlistEntry, entry_id).event_id

    def work():
        moment = now or utcnow()
        _lock_waitlist(event_id)
        entry = _lock_entry(entry_id)
        if entry.status != WaitlistStatus.WAITING:
            raise EntryNotOpen(_("This entry is no longer waiting (it is %(state)s).", state=entry.state_at(moment)))
        entry.status = status
        entry.ended_at = moment
        if status == WaitlistStatus.SKIPPED:
            audit.record("waitlist.entry_skipped", actor=actor, subject=entry, event_id=event_id, now=moment)
        return entry

    return run_unit_of_work(work)


def _lock_entry(entry_id: int) -> WaitlistEntry:
    return db.session.scalars(
        sa.select(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


# --- offers ----------------------------------------------------------------------------------


def accept(entry: WaitlistEntry, *, user: User, now: datetime | None = None) -> Order:
    """The buyer takes the offer: its order goes to checkout, keeping the offer's time limit."""
    if entry.user_id != user.id:
        raise EntryNotFound(_("No such waiting list entry."))
    entry_id, order_id = entry.id, entry.offer_order_id

    def work():
        moment = now or utcnow()
        if order_id is None:
            raise OfferNotOpen(_("There is no offer for this entry yet."))

        order = locking.lock_order_with_seats(order_id)
        _lock_waitlist(order.event_id)
        locked = _lock_entry(entry_id)
        if locked.status == WaitlistStatus.ACCEPTED and order.status == OrderStatus.PENDING:
            if order.hold_has_expired(moment):
                raise OfferNotOpen(_("This offer has expired; the seats went to the next person waiting."))
            return order  # accepted twice (a double click): the same checkout
        _refuse_unless_offer_open(locked, order, moment)
        locked.status = WaitlistStatus.ACCEPTED
        locked.ended_at = moment
        return order

    return run_unit_of_work(work)


def decline(entry: WaitlistEntry, *, user: User, now: datetime | None = None) -> WaitlistEntry:
    """The buyer declines the offer: the seats go to the next entry they fit, or back on sale."""
    if entry.user_id != user.id:
        raise EntryNotFound(_("No such waiting list entry."))
    return _close_offer(entry, WaitlistStatus.DECLINED, _("Offer declined by the buyer."), now)


def end_offer(entry: WaitlistEntry, *, actor: User | None = None, now: datetime | None = None) -> WaitlistEntry:
    """Admin: end an open offer early; the seats go to the next entry they fit, or back on sale."""
    return _close_offer(entry, WaitlistStatus.EXPIRED, _("Offer ended by the organiser."), now, actor=actor)


def _close_offer(
    entry: WaitlistEntry, status: str, reason: str, now: datetime | None, *, actor: User | None = None
) -> WaitlistEntry:
    from app.services import orders  # orders calls this module on every freeing step

    entry_id, order_id = entry.id, entry.offer_order_id

    def work():
        moment = now or utcnow()
        if order_id is None:
            raise OfferNotOpen(_("There is no offer for this entry."))
        order = locking.lock_order_with_seats(order_id)
        _lock_waitlist(order.event_id)
        locked = _lock_entry(entry_id)
        _refuse_unless_offer_open(locked, order, moment)
        # Marked first, so that closing the order (which offers its seats on) ends no other state.
        locked.status = status
        locked.ended_at = moment
        orders.close_pending(order, OrderStatus.CANCELLED, moment, reason=reason)
        if actor is not None:
            audit.record(
                "waitlist.offer_ended", actor=actor, subject=locked, data={"order": order.reference}, now=moment
            )
        return locked

    return run_unit_of_work(work)


def _refuse_unless_offer_open(entry: WaitlistEntry, order: Order, now: datetime) -> None:
    if entry.status != WaitlistStatus.OFFERED or order.status != OrderStatus.PENDING:
        state = entry.state_at(now)
        raise OfferNotOpen(_("This offer is no longer open (it is %(state)s).", state=state), state=state)
    if order.hold_has_expired(now) or entry.offer_has_expired(now):
        raise OfferNotOpen(_("This offer has expired; the seats went to the next person waiting."), state="expired")


def offer_minutes() -> int:
    return current_app.config["WAITLIST_OFFER_MINUTES"]


def seats_freed(event_id: int, seat_ids, now: datetime, *, closed_order: Order | None = None) -> list[WaitlistEntry]:
    """Hook of every freeing step (inside its unit of work, seats locked): end the offer the closed
    order was, then offer the freed seats to the list."""
    if not _has_open_entries(event_id):
        return []  # the common case: one indexed read and nothing more
    skip_user_id = None
    if closed_order is not None:
        skip_user_id = closed_order.user_id
        _lock_waitlist(event_id)  # before its entries, as everywhere
        db.session.execute(
            sa.update(WaitlistEntry)
            .where(WaitlistEntry.offer_order_id == closed_order.id, WaitlistEntry.status == WaitlistStatus.OFFERED)
            .values(
                status=WaitlistStatus.DECLINED
                if closed_order.status == OrderStatus.CANCELLED
                else WaitlistStatus.EXPIRED,
                ended_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session="fetch")
        )
    return offer_freed_seats(event_id, seat_ids, now, skip_user_id=skip_user_id)


def _has_open_entries(event_id: int) -> bool:
    return db.session.scalar(
        sa.select(sa.exists().where(WaitlistEntry.event_id == event_id, WaitlistEntry.status.in_(WaitlistStatus.OPEN)))
    )


def offer_expired_seats(event_id: int, seats, now: datetime) -> bool:
    """Lazy expiry at hold time: seats of holds that ran out go to the list before anyone else.

    Called by hold() with the seats locked and the stale bookings on them already expired; True
    when some of them were offered (the hold must then be refused).
    """
    expired = [seat.id for seat in seats if seat.hold_has_expired(now)]
    if not expired or not events_with_waiting([event_id]):
        return False
    from app.services import orders

    orders.move_seats(expired, SeatStatus.AVAILABLE, now, only_unclaimed=True)
    seat_changes.mark_changed(event_id, expired)
    return bool(offer_freed_seats(event_id, expired, now))


def offer_freed_seats(event_id: int, seat_ids, now: datetime, *, skip_user_id: int | None = None):
    """Offer freed seats (locked by the caller), with the event's other available seats, to the
    waiting entries they fit, first come first served; returns the entries that got an offer.
    Seats nobody can use stay available."""
    seat_ids = sorted(set(seat_ids))
    if not seat_ids or not events_with_waiting([event_id]):
        return []
    event = db.session.get(Event, event_id)
    if event is None or not event.is_on_sale(now):
        return []
    waitlist = _lock_waitlist(event_id)
    if waitlist is None or not waitlist.is_open:
        return []
    pool = _seat_pool(event_id)
    if not any(seat[0] in seat_ids for seat in pool):
        return []
    pool.sort(key=lambda seat: (len(seat[1]), seat[1], seat[2]))
    # A buyer with a checkout open for the event cannot get a second pending order: passed over.
    busy = set(
        db.session.scalars(
            sa.select(Order.user_id).where(Order.event_id == event_id, Order.status == OrderStatus.PENDING)
        )
    )
    busy.add(skip_user_id)
    offered = []
    for candidate in _waiting_in_line(event_id, pool):
        if not pool:
            break
        if candidate.user_id in busy:
            continue
        chosen = fitting_seats(candidate, pool)
        if chosen is None:
            continue
        entry = db.session.get(WaitlistEntry, candidate.id, populate_existing=True)
        _make_offer(entry, chosen, now)
        taken = {seat[0] for seat in chosen}
        pool = [seat for seat in pool if seat[0] not in taken]
        offered.append(entry)
    return offered


ENTRY_PAGE = 200


def _waiting_in_line(event_id: int, pool):
    """The event's waiting entries in queue order, as light rows read a page at a time (the offer
    step usually stops at the first few), leaving out those the pool is too small or of the wrong
    categories for."""
    categories = {seat[3] for seat in pool}
    after = 0
    while True:
        page = db.session.execute(
            sa.select(
                WaitlistEntry.id,
                WaitlistEntry.user_id,
                WaitlistEntry.party_size,
                WaitlistEntry.price_category_id,
                WaitlistEntry.together,
            )
            .where(
                WaitlistEntry.event_id == event_id,
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.id > after,
                WaitlistEntry.party_size <= len(pool),
                sa.or_(WaitlistEntry.price_category_id.is_(None), WaitlistEntry.price_category_id.in_(categories)),
            )
            .order_by(WaitlistEntry.id)
            .limit(ENTRY_PAGE)
        ).all()
        yield from page
        if len(page) < ENTRY_PAGE:
            return
        after = page[-1].id


def _seat_pool(event_id: int) -> list[tuple]:
    """The event's available seats (id, row, column, category, price): the freed ones, which the
    caller has locked, and any left on public sale earlier, so that freed seats can complete a
    party. Those are locked too, skipping any a buyer is holding the lock of right now (waiting
    for it here would take seat locks out of ascending order)."""
    price = sa.select(PriceCategory.price).where(PriceCategory.id == Seat.price_category_id).scalar_subquery()
    return [
        tuple(row)
        for row in db.session.execute(
            sa.select(Seat.id, Seat.row, Seat.column, Seat.price_category_id, price)
            .where(Seat.event_id == event_id, Seat.status == SeatStatus.AVAILABLE)
            .order_by(Seat.id)
            .with_for_update(skip_locked=True)
        )
    ]


def fitting_seats(entry: WaitlistEntry, pool) -> list[tuple] | None:
    """The first seats of the pool (id, row, column, category, price; sorted by row and column)
    that serve the entry, or None."""
    candidates = [s for s in pool if entry.price_category_id is None or s[3] == entry.price_category_id]
    if len(candidates) < entry.party_size:
        return None
    if not entry.together:
        return candidates[: entry.party_size]
    run = []
    for seat in candidates:
        if run and (seat[1] != run[-1][1] or seat[2] != run[-1][2] + 1):
            run = []
        run.append(seat)
        if len(run) == entry.party_size:
            return run
    return None


def _make_offer(entry: WaitlistEntry, seats, now: datetime) -> Order:
    expires_at = now + timedelta(minutes=offer_minutes())
    ids = sorted(seat[0] for seat in seats)
    order = Order(
        user_id=entry.user_id,
        event_id=entry.event_id,
        hold_expires_at=expires_at,
        total_amount=sum((seat[4] for seat in seats), Decimal("0.00")),
    )
    db.session.add(order)
    db.session.flush()
    db.session.execute(
        sa.insert(Booking),
        [
            {
                "order_id": order.id,
                "user_id": entry.user_id,
                "event_id": entry.event_id,
                "seat_id": seat[0],
                "total_amount": seat[4],
            }
            for seat in seats
        ],
    )
    claimed = db.session.execute(
        sa.update(Seat)
        .where(Seat.id.in_(ids), Seat.status == SeatStatus.AVAILABLE)
        .values(status=SeatStatus.RESERVED, reservation_expires_at=expires_at, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != len(ids):
        raise Conflict("freed seats changed before they could be offered")
    entry.status = WaitlistStatus.OFFERED
    entry.offer_order_id = order.id
    entry.offered_at = now
    entry.offer_expires_at = expires_at
    entry.updated_at = now
    seat_changes.mark_changed(entry.event_id, ids, state=seatmap.STATE_CODES[SeatStatus.RESERVED])
    _email_offer(entry, order, [f"{seat[1]}{seat[2]}" for seat in seats], now)
    return order


def _where_to_answer() -> str:
    """A link to My bookings when a request tells the site's address; jobs name the page instead."""
    if has_request_context():
        return url_for("booking.my_bookings", _external=True)
    return _l("My bookings")


def _email_offer(entry: WaitlistEntry, order: Order, labels, now: datetime) -> None:
    """Queue the offer's email in this unit of work (sent by a job after the commit)."""
    user, event = db.session.get(User, entry.user_id), db.session.get(Event, entry.event_id)
    mail.enqueue_notice(
        user,
        subject=_l("Seats for %(event)s are waiting for you", event=event.name),
        paragraphs=[
            _l(
                "Seats %(seats)s of %(event)s freed up and are held for you (order %(reference)s, %(total)s).",
                seats=", ".join(labels),
                event=event.name,
                reference=order.reference,
                total=f"{order.total_amount:.2f}",
            ),
            _l(
                "Accept and pay before %(time)s UTC, or decline, under %(where)s; then they go to the next person.",
                time=order.hold_expires_at.strftime("%Y-%m-%d %H:%M"),
                where=_where_to_answer(),
            ),
        ],
        dedupe_key=f"waitlist.offer.{entry.id}.{order.id}",
        order=order,
        now=now,
    )


# --- admins and jobs -------------------------------------------------------------------------


def set_open(event: Event, is_open: bool, *, actor: User | None = None, now: datetime | None = None) -> Waitlist:
    """Admin: let the list take entries, or not (entries and offers already made stay)."""
    event_id = event.id
    _ensure_waitlist(event_id)

    def work():
        moment = now or utcnow()
        waitlist = _lock_waitlist(event_id)
        waitlist.is_open = bool(is_open)
        waitlist.closed_at = None if is_open else moment
        action = "waitlist.opened" if is_open else "waitlist.closed"
        audit.record(action, actor=actor, subject=waitlist, event_id=event_id, now=moment)
        return waitlist

    return run_unit_of_work(work)


def close_for_cancelled_event(event_id: int, now: datetime) -> list[WaitlistEntry]:
    """Hook of event cancellation (inside its unit of work): close the list and its open entries."""
    waitlist = _lock_waitlist(event_id)
    if waitlist is None:
        return []
    waitlist.is_open = False
    waitlist.closed_at = now
    entries = db.session.scalars(
        sa.select(WaitlistEntry)
        .where(WaitlistEntry.event_id == event_id, WaitlistEntry.status.in_(WaitlistStatus.OPEN))
        .order_by(WaitlistEntry.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    event = db.session.get(Event, event_id)
    for entry in entries:
        entry.status = WaitlistStatus.CLOSED
        entry.ended_at = now
        mail.enqueue_notice(
            db.session.get(User, entry.user_id),
            subject=_l("%(event)s is cancelled", event=event.name),
            paragraphs=[_l("%(event)s was cancelled, so its waiting list is closed.", event=event.name)],
            dedupe_key=f"waitlist.closed.{entry.id}",
            now=now,
        )
    return entries


def settle_lapsed_holds(event_ids, now: datetime | None = None) -> int:
    """Lazy expiry for the list: close the run-out holds of these events where entries wait, so
    the seats are offered when a waiting buyer looks (no job needed); returns how many closed."""
    from app.services import booking

    moment = now or utcnow()
    waiting = events_with_waiting(event_ids)
    if not waiting:
        return 0
    lapsed = db.session.scalars(
        sa.select(Order)
        .where(Order.event_id.in_(waiting), Order.status == OrderStatus.PENDING, Order.hold_expires_at <= moment)
        .order_by(Order.id)
    ).all()
    for order in lapsed:
        booking.expire_if_due(order, moment)
    return len(lapsed)


def tidy_offers(now: datetime | None = None) -> int:
    """Job: close offers past their limit (their seats go on to the next entry) and mark offers
    paid for without a click on Accept as accepted; returns how many entries it changed."""
    from app.services import booking

    moment = now or utcnow()
    paid = db.session.scalars(
        sa.select(WaitlistEntry.id)
        .join(Order, WaitlistEntry.offer_order_id == Order.id)
        .where(WaitlistEntry.status == WaitlistStatus.OFFERED, Order.status == OrderStatus.CONFIRMED)
    ).all()
    for entry_id in paid:
        run_unit_of_work(lambda entry_id=entry_id: _mark_paid_offer_accepted(entry_id, moment))
    lapsed = db.session.scalars(
        sa.select(Order)
        .join(WaitlistEntry, WaitlistEntry.offer_order_id == Order.id)
        .where(
            WaitlistEntry.status.in_((WaitlistStatus.OFFERED, WaitlistStatus.ACCEPTED)),
            Order.status == OrderStatus.PENDING,
            Order.hold_expires_at <= moment,
        )
        .order_by(Order.id)
    ).all()
    db.session.rollback()
    for order in lapsed:
        booking.expire_if_due(order, moment)
    return len(paid) + len(lapsed)


def _mark_paid_offer_accepted(entry_id: int, now: datetime) -> None:
    event_id = db.session.get(WaitlistEntry, entry_id).event_id
    _lock_waitlist(event_id)
    entry = _lock_entry(entry_id)
    if entry.status == WaitlistStatus.OFFERED:  # re-checked under the lock: the job may race a click
        entry.status = WaitlistStatus.ACCEPTED
        entry.ended_at = now
