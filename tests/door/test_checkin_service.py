"""The check-in service: each answer the door can get, and what each one changes (or not)."""

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, CheckinConflict, Ticket, utcnow
from app.services import checkin, events, tickets
from app.services.errors import InvalidRequest, NotFound
from tests.door.support import sold_tickets, staff_user
from tests.invariants import snapshot_rows


@pytest.fixture
def door(factory):
    event = factory.event(rows=2, columns=3)
    return event, sold_tickets(factory, event, 2), staff_user(factory)


def fresh(ticket):
    db.session.expire_all()
    return db.session.get(Ticket, ticket.id)


def test_a_signed_payload_is_admitted_once_then_already_checked_in(door):
    """The first scan admits with seat and category; the second says when and at which door."""
    event, (ticket, _), staff = door
    now = utcnow().replace(microsecond=0)
    first = checkin.check_in(tickets.payload_for(ticket), event.id, "North", staff, now)
    assert first.result == checkin.ADMITTED and first.status == 200
    assert ticket.seat.label in first.message and "Standard" in first.message
    stored = fresh(ticket)
    assert (stored.checked_in_at, stored.checked_in_door, stored.checked_in_by_id) == (now, "North", staff.id)
    second = checkin.check_in(tickets.payload_for(ticket), event.id, "South", staff, now + timedelta(seconds=5))
    assert second.result == checkin.ALREADY_CHECKED_IN and second.status == 409
    assert (second.checked_in_at, second.door) == (now, "North")
    assert "North" in second.message
    assert fresh(ticket).checked_in_door == "North"
    assert checkin.counts(event.id) == {"checked_in": 1, "sold": 2}


@pytest.mark.parametrize(
    "typed",
    [
        lambda code: code.lower(),
        lambda code: tickets.grouped(code),
        lambda code: " " + " ".join(tickets.grouped(code).lower()) + " ",
    ],
)
def test_a_typed_code_is_normalised(door, typed):
    """Lower case, dashes and spaces do not matter."""
    event, (ticket, _), staff = door
    scan = checkin.check_in(typed(ticket.code), event.id, "Side", staff, utcnow())
    assert scan.result == checkin.ADMITTED and scan.ticket.id == ticket.id


def test_crockford_lookalikes_are_read_as_digits(factory):
    """A typed O is a 0 and an I or L is a 1."""
    event = factory.event(rows=1, columns=2)
    ticket = sold_tickets(factory, event, 1)[0]
    ticket.code = "0123456789ABCDEF"
    db.session.commit()
    scan = checkin.check_in("o123-4567-89ab-cdef".replace("1", "l"), event.id, "Side", staff_user(factory), utcnow())
    assert scan.result == checkin.ADMITTED


def tamper(payload, code=None):
    prefix, signature = payload.rsplit(".", 1)
    return f"{prefix}.{('A' if signature[0] != 'A' else 'B')}{signature[1:]}"


@pytest.mark.parametrize(
    "garble",
    [
        pytest.param(lambda payload, code: payload[:-10], id="truncated"),
        pytest.param(tamper, id="bad-signature"),
        pytest.param(lambda payload, code: payload.replace(code, "0" * 16), id="edited-code"),
        pytest.param(lambda payload, code: payload + "A" * 200, id="oversized"),
        pytest.param(lambda payload, code: "SP1.nokey" + payload.split(".", 2)[2][1:], id="unknown-kid"),
        pytest.param(lambda payload, code: "hello world", id="garbage"),
        pytest.param(lambda payload, code: "", id="empty"),
        pytest.param(lambda payload, code: "\x00\ud800" * 5, id="control-characters"),
        pytest.param(lambda payload, code: "Z" * 16, id="unknown-code"),
        pytest.param(lambda payload, code: code[:15], id="short-code"),
    ],
)
def test_anything_not_genuine_is_invalid_and_changes_nothing(door, garble):
    event, (ticket, _), staff = door
    before = snapshot_rows()
    scan = checkin.check_in(garble(tickets.payload_for(ticket), ticket.code), event.id, "North", staff, utcnow())
    assert scan.result == checkin.INVALID and scan.status == 404
    assert "Not a StagePass ticket" in scan.message
    assert snapshot_rows() == before


def test_another_events_ticket_is_wrong_event(door, factory):
    event, (ticket, _), staff = door
    other = factory.event(name="The Other Show", rows=1, columns=2)
    before = snapshot_rows()
    scan = checkin.check_in(tickets.payload_for(ticket), other.id, "North", staff, utcnow())
    assert scan.result == checkin.WRONG_EVENT and scan.status == 422
    assert event.name in scan.message
    assert snapshot_rows() == before


def test_a_revoked_ticket_is_void(door):
    event, (ticket, _), staff = door
    ticket.revoked_at, ticket.revoked_reason = utcnow(), "refunded"
    db.session.commit()
    before = snapshot_rows()
    scan = checkin.check_in(ticket.code, event.id, "North", staff, utcnow())
    assert scan.result == checkin.VOID and scan.status == 410 and "refunded" in scan.message
    assert snapshot_rows() == before
    assert checkin.counts(event.id) == {"checked_in": 0, "sold": 1}


def test_a_ticket_of_a_deleted_event_is_refused_at_its_door_and_wrong_at_another(door, factory):
    """Its own door is gone (404: an event with sold seats is cancelled, which revokes its tickets,
    before it can be deleted); at another event's door it is named as another, deleted, event."""
    event, (ticket, _), staff = door
    event.soft_delete()
    db.session.commit()
    with pytest.raises(NotFound):
        checkin.check_in(ticket.code, event.id, "North", staff, utcnow())
    other = factory.event(rows=1, columns=1)
    scan = checkin.check_in(tickets.payload_for(ticket), other.id, "North", staff, utcnow())
    assert scan.result == checkin.WRONG_EVENT and "deleted" in scan.message
    assert fresh(ticket).checked_in_at is None


@pytest.mark.parametrize("bad_door", [None, "", "   ", 7, "x" * 65])
def test_a_door_must_be_named(door, bad_door):
    event, (ticket, _), staff = door
    before = snapshot_rows()
    with pytest.raises(InvalidRequest):
        checkin.check_in(ticket.code, event.id, bad_door, staff, utcnow())
    assert snapshot_rows() == before


def test_an_offline_scan_is_admitted_at_the_time_it_was_scanned(door):
    event, (ticket, _), staff = door
    now = utcnow().replace(microsecond=0)
    scanned = now - timedelta(minutes=3)
    scan = checkin.check_in(tickets.payload_for(ticket), event.id, "North", staff, now, scanned, offline=True)
    assert scan.result == checkin.ADMITTED and not scan.conflict
    assert fresh(ticket).checked_in_at == scanned
    future = checkin.check_in(ticket.code, event.id, "North", staff, now, now + timedelta(days=1), offline=True)
    assert future.result == checkin.ALREADY_CHECKED_IN


def test_an_offline_scan_that_meets_an_earlier_check_in_is_a_conflict(door):
    """Recorded for the admins with both scans; an online repeat is no conflict."""
    event, (ticket, _), staff = door
    now = utcnow().replace(microsecond=0)
    checkin.check_in(ticket.code, event.id, "North", staff, now)
    online = checkin.check_in(ticket.code, event.id, "North", staff, now)
    assert online.result == checkin.ALREADY_CHECKED_IN and not online.conflict
    assert checkin.conflicts(event.id) == []
    scanned = now - timedelta(minutes=1)
    late = checkin.check_in(tickets.payload_for(ticket), event.id, "South", staff, now, scanned, offline=True)
    assert late.result == checkin.ALREADY_CHECKED_IN and late.conflict
    [conflict] = checkin.conflicts(event.id)
    assert (conflict.ticket_id, conflict.door, conflict.scanned_at, conflict.result) == (
        ticket.id,
        "South",
        scanned,
        checkin.ALREADY_CHECKED_IN,
    )
    assert (conflict.first_door, conflict.first_checked_in_at, conflict.staff_id) == ("North", now, staff.id)


def test_an_offline_scan_of_a_void_ticket_is_a_conflict(door):
    event, (_, ticket), staff = door
    ticket.revoked_at = utcnow()
    db.session.commit()
    scan = checkin.check_in(ticket.code, event.id, "North", staff, utcnow(), offline=True)
    assert scan.result == checkin.VOID and scan.conflict
    assert db.session.query(CheckinConflict).count() == 1


def test_undo_lets_the_ticket_in_again(door, factory):
    event, (ticket, _), staff = door
    admin = factory.admin()
    checkin.check_in(ticket.code, event.id, "North", staff, utcnow())
    checkin.undo_check_in(ticket.id, event.id, admin, utcnow())
    assert fresh(ticket).checked_in_at is None and fresh(ticket).checked_in_door is None
    [entry] = db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == "checkin.undone")).all()
    assert (entry.actor_id, entry.subject_id, entry.data["door"], entry.data["code"]) == (
        admin.id,
        ticket.id,
        "North",
        ticket.code,
    )
    with pytest.raises(checkin.NotCheckedIn):
        checkin.undo_check_in(ticket.id, event.id, admin, utcnow())
    with pytest.raises(NotFound):
        checkin.undo_check_in(ticket.id, event.id + 999, admin, utcnow())
    assert checkin.check_in(ticket.code, event.id, "North", staff, utcnow()).result == checkin.ADMITTED


def test_counts_by_event_and_latest_check_ins(door, factory):
    event, (first, second), staff = door
    empty = factory.event(rows=1, columns=1)
    checkin.check_in(first.code, event.id, "North", staff, utcnow() - timedelta(seconds=5))
    checkin.check_in(second.code, event.id, "North", staff, utcnow())
    assert checkin.counts_by_event([event.id, empty.id]) == {
        event.id: {"checked_in": 2, "sold": 2},
        empty.id: {"checked_in": 0, "sold": 0},
    }
    assert [ticket.id for ticket in checkin.latest_check_ins(event.id)] == [second.id, first.id]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("2026-12-07T20:15:00Z", (2026, 12, 7, 20, 15)),
        ("2026-12-07T21:15:00+01:00", (2026, 12, 7, 20, 15)),
        ("2026-12-07T20:15:00", (2026, 12, 7, 20, 15)),
    ],
)
def test_scanned_at_is_read_as_utc(text, expected):
    parsed = checkin.parse_scanned_at(text)
    assert (parsed if parsed is None else parsed.timetuple()[:5]) == expected


@pytest.mark.parametrize("text", ["yesterday", 12, "2026-13-01T00:00:00", "9" * 50, ["2026-12-07"]])
def test_a_bad_scanned_at_is_refused(text):
    with pytest.raises(InvalidRequest):
        checkin.parse_scanned_at(text)


def test_a_cancelled_events_revoked_tickets_are_void(door):
    """Cancelling refunds and revokes (the tickets service); the door then says void."""
    event, (ticket, _), staff = door
    tickets.revoke_for_order(ticket.order, "the event was cancelled", utcnow())
    events.get_event(event.id).status = "cancelled"
    db.session.commit()
    scan = checkin.check_in(ticket.code, event.id, "North", staff, utcnow())
    assert scan.result == checkin.VOID and "cancelled" in scan.message
