"""Every admin action and permission change leaves one audit line, written with the change itself."""

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, Event, Order, User
from app.services import accounts, booking, payments
from tests.admin_support import event_form, paid_order, post_form, seat_ids


def lines(action=None):
    db.session.expire_all()
    query = sa.select(AuditEntry).order_by(AuditEntry.id)
    if action:
        query = query.where(AuditEntry.action == action)
    return db.session.scalars(query).all()


def only(action):
    found = lines(action)
    assert len(found) == 1, [(line.action, line.data) for line in lines()]
    return found[0]


def test_creating_editing_publishing_and_deleting_an_event(client, admin, factory):
    response = client.post("/admin/events/new", data=event_form(client))
    assert response.status_code == 302
    event = db.session.scalars(sa.select(Event).where(Event.name == "Spring Gala")).one()
    created = only("event.created")
    assert (created.actor_id, created.actor_label, created.subject_id, created.event_id) == (
        admin.id,
        admin.email,
        event.id,
        event.id,
    )
    assert created.data["rows"] == 5 and created.data["categories"] == [["Standard", "40.00", None, None]]

    post_form(client, f"/admin/events/{event.id}/edit", event_form(client, venue="Small Hall"))
    assert only("event.updated").data == {"changes": {"venue": ["Main Hall", "Small Hall"]}}

    post_form(client, f"/admin/events/{event.id}/publish")
    assert only("event.published").actor_id == admin.id

    post_form(client, f"/admin/events/{event.id}/delete")
    assert only("event.deleted").data == {"name": "Spring Gala"}


def test_a_refused_change_leaves_no_line(client, admin, factory):
    event = factory.event()
    buyer = factory.user()
    paid_order(buyer, event, seat_ids(event, 1))
    post_form(client, f"/admin/events/{event.id}/delete")  # refused: a seat is booked
    assert lines("event.deleted") == []


def test_cancelling_an_order_and_a_seat(client, admin, factory):
    event = factory.event()
    first = paid_order(factory.user(), event, seat_ids(event, 2))
    post_form(client, f"/admin/bookings/{first.bookings[0].id}/cancel", {"reason": "Broken seat"})
    seat_line = only("booking.cancelled")
    assert (seat_line.actor_id, seat_line.subject_type, seat_line.event_id) == (admin.id, "booking", event.id)
    assert seat_line.data["reason"] == "Broken seat" and seat_line.data["reference"] == first.reference

    post_form(client, f"/admin/orders/{first.reference}/cancel")
    order_line = only("order.cancelled")
    assert (order_line.subject_type, order_line.subject_id, order_line.actor_id) == ("order", first.id, admin.id)
    assert order_line.data["refunded"] == "25.00" and order_line.data["was"] == "confirmed"


def test_a_refused_refund_leaves_no_line(client, admin, factory):
    event = factory.event()
    buyer = factory.user()
    order = payments.pay_by_card(
        booking.hold(buyer, event, seat_ids(event, 1)),
        user=buyer,
        card_number=payments.CARD_REFUND_FAILS,
    )
    post_form(client, f"/admin/orders/{order.reference}/cancel")
    assert db.session.get(Order, order.id).status == "confirmed"
    assert lines("order.cancelled") == []


def test_user_changes_and_admin_rights(client, admin, factory):
    post_form(
        client,
        "/admin/users/new",
        {"email": "new@example.com", "name": "New", "password": "long-enough-1", "is_admin": "y"},
    )
    user_id = db.session.scalars(sa.select(User.id).where(User.email == "new@example.com")).one()
    assert only("user.created").data == {"email": "new@example.com", "is_admin": True}
    assert only("user.admin_granted").subject_id == user_id

    post_form(client, f"/admin/users/{user_id}/edit", {"email": "new@example.com", "name": "Renamed"})
    update = only("user.updated")
    assert update.data == {"name": ["New", "Renamed"], "is_admin": [True, False]}
    revoked = only("user.admin_revoked")
    assert (revoked.actor_id, revoked.subject_id) == (admin.id, user_id)

    post_form(client, f"/admin/users/{user_id}/delete")
    deleted = only("user.deleted")
    assert (deleted.subject_id, deleted.data["email"]) == (user_id, "new@example.com")


def test_a_password_change_is_recorded_but_not_the_password(client, admin, factory):
    user = factory.user(name="Buyer")
    post_form(
        client, f"/admin/users/{user.id}/edit", {"email": user.email, "name": "Buyer", "password": "another-pass-9"}
    )
    assert only("user.updated").data == {"password": "changed"}
    assert "another-pass-9" not in str([line.data for line in lines()])


def test_registering_as_a_buyer_is_no_admin_action(client):
    accounts.create_user("buyer@example.com", "Buyer", "long-enough-1")
    assert lines() == []


def test_the_create_admin_command_records_the_grant(runner, factory):
    buyer = factory.user(email="promote@example.com")
    result = runner.invoke(args=["create-admin", "promote@example.com", "--password", "long-enough-1"])
    assert result.exit_code == 0, result.output
    granted = only("user.admin_granted")
    assert (granted.actor_id, granted.actor_label, granted.subject_id) == (None, "cli:set-up-user", buyer.id)
