"""The waiting list's pages: the event page's panel, My bookings, offers, admin section, CSV."""

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, Seat, WaitlistEntry
from app.services import booking, waitlist
from tests.support import csrf_token, log_in


def sold_out_event(factory):
    event = factory.event(rows=1, columns=2)
    ids = list(db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)))
    holder = factory.user()
    order = booking.hold(holder, event, ids)
    return event, holder, order


def entries():
    return db.session.scalar(sa.select(sa.func.count(WaitlistEntry.id)))


def join(client, event, **data):
    token = csrf_token(client, f"/events/{event.id}")
    return client.post(f"/events/{event.id}/waitlist", data={"csrf_token": token, **data})


def test_the_event_page_offers_the_list_only_when_sold_out(client, factory, login):
    login(factory.user())
    free = factory.event(rows=1, columns=2)
    assert 'id="waitlist-join"' not in client.get(f"/events/{free.id}").get_data(as_text=True)
    event, _, _ = sold_out_event(factory)
    assert 'id="waitlist-join"' in client.get(f"/events/{event.id}").get_data(as_text=True)


def test_joining_shows_the_place_in_line_and_my_bookings_lists_it(client, factory, login):
    event, _, _ = sold_out_event(factory)
    login(factory.user())
    response = join(client, event, party_size="2", category="any", together="y")
    assert response.status_code == 302
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert "Number 1 in line" in page and 'id="leave-waitlist"' in page
    mine = client.get("/my/bookings").get_data(as_text=True)
    assert "number 1 in line" in mine and event.name in mine


@pytest.mark.parametrize("party", ["0", "7", "two", ""])
def test_bad_party_sizes_get_a_clear_message(client, factory, login, party):
    event, _, _ = sold_out_event(factory)
    login(factory.user())
    response = join(client, event, party_size=party, category="any")
    assert response.status_code == 400
    assert "Party size must be a whole number from 1 to 6." in response.get_data(as_text=True)
    assert entries() == 0


def test_joining_twice_or_with_free_seats_is_refused(client, factory, login):
    event, _, _ = sold_out_event(factory)
    login(factory.user())
    assert join(client, event, party_size="1").status_code == 302
    twice = join(client, event, party_size="1")
    assert twice.status_code == 409 and "already on the waiting list" in twice.get_data(as_text=True)
    free = factory.event(rows=1, columns=2)
    response = join(client, free, party_size="1")
    assert response.status_code == 409 and "Seats are still free" in response.get_data(as_text=True)
    assert entries() == 1


def test_an_offer_is_accepted_straight_into_checkout(client, factory, login):
    event, holder, order = sold_out_event(factory)
    buyer = factory.user()
    entry = waitlist.join(buyer, event, party_size=2)
    booking.release(order, user=holder)
    login(buyer)
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert 'id="accept-offer"' in page
    token = csrf_token(client, "/my/bookings")
    accepted = client.post(f"/waitlist/{entry.id}/accept", data={"csrf_token": token})
    assert accepted.status_code == 302 and "/checkout" in accepted.headers["Location"]
    checkout = client.get(accepted.headers["Location"]).get_data(as_text=True)
    assert 'id="extend-hold"' not in checkout  # an offer is never held past its limit


def test_another_buyers_entry_is_not_found(client, factory, login):
    event, _, _ = sold_out_event(factory)
    entry = waitlist.join(factory.user(), event, party_size=1)
    login(factory.user())
    token = csrf_token(client, "/my/bookings")
    for action in ("accept", "decline", "leave"):
        response = client.post(f"/waitlist/{entry.id}/{action}", data={"csrf_token": token})
        assert response.status_code == 404
    db.session.expire_all()
    assert db.session.get(WaitlistEntry, entry.id).status == "waiting"


def test_checkout_offers_one_extension(client, factory):
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    seat_id = db.session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))
    order = booking.hold(buyer, event, [seat_id])
    log_in(client, buyer)
    page = client.get(f"/orders/{order.reference}/checkout").get_data(as_text=True)
    assert 'id="extend-hold"' in page and 'id="hold-warning"' in page and 'id="hold-announcer"' in page
    token = csrf_token(client, "/my/bookings")
    assert client.post(f"/orders/{order.reference}/extend", data={"csrf_token": token}).status_code == 302
    again = client.post(f"/orders/{order.reference}/extend", data={"csrf_token": token}, follow_redirects=True)
    assert "already extended once" in again.get_data(as_text=True)


def test_admin_sees_the_list_and_acts_on_it(client, factory):
    event, holder, order = sold_out_event(factory)
    first = waitlist.join(factory.user(email="first@example.com"), event, party_size=2)
    second = waitlist.join(factory.user(email="second@example.com"), event, party_size=1)
    log_in(client, factory.admin())
    page = client.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert "first@example.com" in page and "second@example.com" in page and "2 waiting" in page
    token = csrf_token(client, f"/admin/events/{event.id}")
    assert (
        client.post(f"/admin/events/{event.id}/waitlist/{second.id}/skip", data={"csrf_token": token}).status_code
        == 302
    )
    booking.release(order, user=holder)
    assert (
        client.post(f"/admin/events/{event.id}/waitlist/{first.id}/end-offer", data={"csrf_token": token}).status_code
        == 302
    )
    assert client.post(f"/admin/events/{event.id}/waitlist/closed", data={"csrf_token": token}).status_code == 302
    assert not waitlist.is_list_open(event.id)
    csv_response = client.get(f"/admin/events/{event.id}/waitlist.csv")
    assert csv_response.mimetype == "text/csv"
    lines = csv_response.get_data(as_text=True).splitlines()
    assert len(lines) == 3 and "skipped" in lines[2] + lines[1] and "expired" in lines[1] + lines[2]
    missing = client.post(f"/admin/events/{event.id}/waitlist/999999/skip", data={"csrf_token": token})
    assert missing.status_code == 404
    actions = db.session.scalars(sa.select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert [a for a in actions if a.startswith("waitlist.")] == [
        "waitlist.entry_skipped",
        "waitlist.offer_ended",
        "waitlist.closed",
    ]
