"""Two doors scan the same ticket in the same instant: the database admits it exactly once."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import CheckinConflict, Ticket, User, utcnow
from app.services import checkin, tickets
from tests.concurrency.test_concurrency import run_together
from tests.door.support import sold_tickets, staff_user

ROUNDS = 20


@pytest.mark.mariadb
def test_two_doors_same_ticket_same_moment_exactly_one_admitted(app, factory):
    """Threads with their own connections, released by a barrier, per ticket: one admitted, one
    already_checked_in naming the winner's door, never two admissions; both answers count it in."""
    event = factory.event(rows=4, columns=5)
    sold = sold_tickets(factory, event, ROUNDS)
    staff_ids = [staff_user(factory).id, staff_user(factory).id]
    event_id = event.id
    for number, ticket in enumerate(sold, start=1):
        payload = tickets.payload_for(ticket)

        def scan(door, payload=payload):
            staff = db.session.get(User, staff_ids[door])
            result = checkin.check_in(payload, event_id, f"Door {door}", staff, utcnow())
            return result.result, result.door, result.counts["checked_in"]

        results = run_together(app, 2, scan)
        assert all(kind == "ok" for kind, _ in results), results
        answers = sorted(answer for _, answer in results)
        assert [result for result, _, _ in answers] == ["admitted", "already_checked_in"], answers
        db.session.expire_all()
        stored = db.session.get(Ticket, ticket.id)
        assert answers[0][1] == answers[1][1] == stored.checked_in_door  # both name the one door that won
        assert answers[0][2] == answers[1][2] == number  # and both counters include it
    assert checkin.counts(event_id) == {"checked_in": ROUNDS, "sold": ROUNDS}


@pytest.mark.mariadb
def test_many_offline_phones_syncing_the_same_ticket_record_every_clash(app, factory):
    """Eight phones that each accepted the ticket offline sync at once: one admission, seven conflicts."""
    event = factory.event(rows=1, columns=2)
    [ticket] = sold_tickets(factory, event, 1)
    staff_id, event_id, payload = staff_user(factory).id, event.id, tickets.payload_for(ticket)

    def sync(door):
        staff = db.session.get(User, staff_id)
        return checkin.check_in(payload, event_id, f"Door {door}", staff, utcnow(), offline=True).result

    results = [answer for _, answer in run_together(app, 8, sync)]
    assert sorted(results) == ["admitted"] + ["already_checked_in"] * 7, results
    assert db.session.scalar(sa.select(sa.func.count(CheckinConflict.id))) == 7
