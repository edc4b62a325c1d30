"""The buyer's journey through the web views, with good and bad input."""

import re

import pytest
import sqlalchemy as sa

from app.models import Booking, Order, Payment, Seat, User
from app.services import booking, payments
from tests.support import csrf_token


def seat_ids(db_session, event, count=None):
    ids = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    return ids[:count] if count else ids


def hold(client, event, ids, token=None, **kwargs):
    headers = {"Accept": "application/json"}
    if token is not False:
        headers["X-CSRFToken"] = token or csrf_token(client, "/")
    return client.post(f"/api/events/{event.id}/holds", json={"seat_ids": ids}, headers=headers, **kwargs)


def counts(db_session):
    db_session.expire_all()
    return (
        db_session.scalar(sa.select(sa.func.count(Order.id))),
        db_session.scalar(sa.select(sa.func.count(Booking.id))),
        tuple(db_session.scalars(sa.select(Seat.status).order_by(Seat.id))),
    )


@pytest.fixture
def buyer(factory, login):
    user = factory.user()
    login(user)
    return user


def test_event_list_links_to_event_pages(client, factory):
    event = factory.event(name="Visible show")
    factory.event(name="Hidden draft", status="draft")
    page = client.get("/").get_data(as_text=True)
    assert f"/events/{event.id}" in page and "12 seats left" in page
    assert "Hidden draft" not in page


def test_event_page_and_draft_is_404(client, factory):
    event = factory.event(name="Concert")
    assert "Concert" in client.get(f"/events/{event.id}").get_data(as_text=True)
    assert client.get(f"/events/{factory.event(status='draft').id}").status_code == 404
    assert client.get("/events/999999").status_code == 404


def test_seat_states_json_etag_and_304(client, factory, db_session):
    event = factory.event(rows=2, columns=2)
    first = client.get(f"/api/events/{event.id}/seats")
    assert first.status_code == 200
    body = first.get_json()
    assert [s[3] for s in body["seats"]] == ["a", "a", "a", "a"]
    assert body["categories"][0]["price"] == "25.00"
    etag = first.headers["ETag"]
    again = client.get(f"/api/events/{event.id}/seats", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    changed = client.get(f"/api/events/{event.id}/seats", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["seats"][0][3] == "r"


def test_journey_hold_checkout_pay_confirmation(client, factory, db_session, buyer):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    response = hold(client, event, ids)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["total"] == "50.00"
    checkout = client.get(body["checkout_url"])
    assert checkout.status_code == 200
    page = checkout.get_data(as_text=True)
    assert "€50.00" in page and 'data-seconds-left="' in page and "A1" in page and "4242 4242 4242 4242" in page
    paid = client.post(
        body["checkout_url"],
        data={"method": "card", "card_number": "4242 4242 4242 4242", "csrf_token": csrf_token(client, "/")},
    )
    assert paid.status_code == 302
    confirmation = client.get(paid.headers["Location"]).get_data(as_text=True)
    assert body["reference"] in confirmation and "confirmed" in confirmation and "ending 4242" in confirmation
    mine = client.get("/my/bookings").get_data(as_text=True)
    assert body["reference"] in mine and "A1, A2" in mine


def test_double_submit_of_the_pay_form_charges_once(client, factory, db_session, buyer):
    event = factory.event()
    url = hold(client, event, seat_ids(db_session, event, 1)).get_json()["checkout_url"]
    token = csrf_token(client, "/")
    form = {"method": "card", "card_number": payments.CARD_SUCCEEDS, "csrf_token": token}
    first, second = client.post(url, data=form), client.post(url, data=form)
    assert first.status_code == second.status_code == 302
    assert "/orders/" in second.headers["Location"] and "checkout" not in second.headers["Location"]
    assert db_session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def test_declined_card_says_why_and_frees_seats(client, factory, db_session, buyer):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    url = hold(client, event, ids).get_json()["checkout_url"]
    response = client.post(
        url,
        data={"method": "card", "card_number": payments.CARD_DECLINED, "csrf_token": csrf_token(client, "/")},
        follow_redirects=True,
    )
    page = response.get_data(as_text=True)
    assert "declined" in page and "released" in page
    assert counts(db_session)[2][:2] == ("available", "available")


def test_invalid_card_number_is_a_form_error(client, factory, db_session, buyer):
    event = factory.event()
    url = hold(client, event, seat_ids(db_session, event, 1)).get_json()["checkout_url"]
    before = counts(db_session)
    response = client.post(url, data={"method": "card", "card_number": "1234", "csrf_token": csrf_token(client, "/")})
    assert response.status_code == 400 and "12 to 19 digits" in response.get_data(as_text=True)
    response = client.post(url, data={"method": "card", "card_number": "", "csrf_token": csrf_token(client, "/")})
    assert response.status_code == 400 and "Enter your card number" in response.get_data(as_text=True)
    assert counts(db_session) == before


def test_wallet_flow(client, factory, db_session, buyer):
    event = factory.event()
    body = hold(client, event, seat_ids(db_session, event, 1)).get_json()
    response = client.post(body["checkout_url"], data={"method": "wallet", "csrf_token": csrf_token(client, "/")})
    assert response.headers["Location"].endswith("/wallet")
    assert "Approve payment" in client.get(response.headers["Location"]).get_data(as_text=True)
    done = client.post(
        response.headers["Location"], data={"approve": "Approve payment", "csrf_token": csrf_token(client, "/")}
    )
    assert done.status_code == 302
    assert db_session.scalar(sa.select(Order.status)) == "confirmed"


def wallet_rows(db_session):
    db_session.expire_all()
    return db_session.execute(sa.select(Order.status, Payment.result).join(Payment, Payment.order_id == Order.id)).all()


@pytest.mark.parametrize(
    "buttons",
    [{}, {"approve": "Approve payment", "decline": "Decline"}],
    ids=["no_button", "both_buttons"],
)
def test_wallet_post_without_a_clear_answer_is_refused_and_changes_nothing(client, factory, db_session, buyer, buttons):
    event = factory.event()
    body = hold(client, event, seat_ids(db_session, event, 1)).get_json()
    wallet_url = client.post(
        body["checkout_url"], data={"method": "wallet", "csrf_token": csrf_token(client, "/")}
    ).headers["Location"]
    before = counts(db_session), wallet_rows(db_session)
    response = client.post(wallet_url, data={"csrf_token": csrf_token(client, "/"), **buttons})
    assert response.status_code == 400 and "Choose Approve payment or Decline" in response.get_data(as_text=True)
    assert (counts(db_session), wallet_rows(db_session)) == before == (before[0], [("pending", "pending")])


def test_wallet_decline_is_a_decline(client, factory, db_session, buyer):
    event = factory.event()
    body = hold(client, event, seat_ids(db_session, event, 1)).get_json()
    wallet_url = client.post(
        body["checkout_url"], data={"method": "wallet", "csrf_token": csrf_token(client, "/")}
    ).headers["Location"]
    response = client.post(
        wallet_url, data={"decline": "Decline", "csrf_token": csrf_token(client, "/")}, follow_redirects=True
    )
    assert "declined in the wallet" in response.get_data(as_text=True)
    assert wallet_rows(db_session) == [("failed", "declined")]


def test_unanswered_card_payment_sends_the_buyer_back_to_pay_again(
    client, factory, db_session, buyer, sandbox_provider
):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    url = hold(client, event, ids).get_json()["checkout_url"]
    form = {"method": "card", "card_number": payments.CARD_PROVIDER_TIMEOUT, "csrf_token": csrf_token(client, "/")}
    response = client.post(url, data=form)
    assert response.status_code == 302 and response.headers["Location"] == url
    page = client.get(url).get_data(as_text=True)
    assert "cannot tell yet whether your card was charged" in page and "charged at most once" in page
    assert counts(db_session)[2][:2] == ("reserved", "reserved")
    again = client.post(url, data=form, follow_redirects=True)
    assert "Payment received" in again.get_data(as_text=True)
    assert len(sandbox_provider.charges) == 1
    assert db_session.scalar(sa.select(sa.func.count(Payment.id))) == 1


def order_page(client, db_session):
    db_session.expire_all()
    reference = db_session.scalar(sa.select(Order.reference))
    return client.get(f"/orders/{reference}").get_data(as_text=True)


@pytest.mark.parametrize(
    "card, shown",
    [
        (payments.CARD_SUCCEEDS, "Paid by card ending 4242."),
        (payments.CARD_DECLINED, "Payment declined: The card was declined: insufficient funds."),
        (payments.CARD_PROVIDER_ERROR, "Payment failed: The card provider had an internal error."),
    ],
)
def test_order_page_says_what_became_of_a_card_payment(client, factory, db_session, buyer, card, shown):
    event = factory.event()
    url = hold(client, event, seat_ids(db_session, event, 1)).get_json()["checkout_url"]
    client.post(url, data={"method": "card", "card_number": card, "csrf_token": csrf_token(client, "/")})
    page = order_page(client, db_session)
    assert shown in page
    if card != payments.CARD_SUCCEEDS:
        assert "Paid" not in page and "paid by" not in page


def test_order_page_of_a_waiting_wallet_payment(client, factory, db_session, buyer):
    event = factory.event()
    url = hold(client, event, seat_ids(db_session, event, 1)).get_json()["checkout_url"]
    client.post(url, data={"method": "wallet", "csrf_token": csrf_token(client, "/")})
    page = order_page(client, db_session)
    assert "Awaiting your approval in the StagePass Wallet." in page and "Approve in the wallet" in page
    assert "Paid" not in page and "paid by" not in page


def test_release_from_my_bookings(client, factory, db_session, buyer):
    event = factory.event()
    reference = hold(client, event, seat_ids(db_session, event, 1)).get_json()["reference"]
    assert "Release seats" in client.get("/my/bookings").get_data(as_text=True)
    response = client.post(
        f"/orders/{reference}/release", data={"csrf_token": csrf_token(client, "/")}, follow_redirects=True
    )
    assert "released" in response.get_data(as_text=True)
    assert counts(db_session)[2][0] == "available"


@pytest.mark.parametrize(
    "choose, status, code",
    [
        (lambda ids, other: [999999], 400, "unknown_seats"),
        (lambda ids, other: other[:1], 400, "unknown_seats"),
        (lambda ids, other: ids[:7], 400, "too_many_seats"),
        (lambda ids, other: [], 400, "no_seats"),
        (lambda ids, other: ["x"], 400, "unknown_seats"),
        (lambda ids, other: ["²"], 400, "unknown_seats"),
        (lambda ids, other: ["①"], 400, "unknown_seats"),
        (lambda ids, other: ["9" * 5000], 400, "unknown_seats"),
        (lambda ids, other: [f" {ids[0]} "], 400, "unknown_seats"),
        (lambda ids, other: ["x"] * 2_000, 400, "too_many_seats"),
    ],
)
def test_bad_holds_are_refused_and_change_nothing(client, factory, db_session, buyer, choose, status, code):
    event, other = factory.event(), factory.event()
    before = counts(db_session)
    response = hold(client, event, choose(seat_ids(db_session, event), seat_ids(db_session, other)))
    assert response.status_code == status
    assert response.get_json()["code"] == code and response.get_json()["error"]
    assert counts(db_session) == before


@pytest.mark.parametrize("status", ["draft", "cancelled"])
def test_hold_on_unsellable_events(client, factory, db_session, buyer, status):
    event = factory.event(status=status)
    response = hold(client, event, seat_ids(db_session, event, 1))
    assert response.status_code == (404 if status == "draft" else 409)
    assert counts(db_session)[0] == 0


def test_taken_seat_is_named(client, factory, db_session, buyer):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    booking.hold(factory.user(), event, ids[1:])
    response = hold(client, event, ids)
    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == "seat_unavailable" and body["seats"] == ["A2"] and body["seat_ids"] == [ids[1]]
    assert "A2" in body["error"]


def test_holding_the_same_seats_twice_points_to_the_open_checkout(client, factory, db_session, buyer):
    event = factory.event()
    ids = seat_ids(db_session, event, 2)
    first = hold(client, event, ids).get_json()
    before = counts(db_session)
    response = hold(client, event, ids)
    assert response.status_code == 409
    body = response.get_json()
    assert body["code"] == "checkout_open" and body["order_reference"] == first["reference"]
    assert counts(db_session) == before


def test_a_held_seat_of_another_event_is_unknown(client, factory, db_session, buyer):
    event, other = factory.event(), factory.event()
    booking.hold(factory.user(), other, seat_ids(db_session, other, 1))
    before = counts(db_session)
    response = hold(client, event, seat_ids(db_session, other, 1))
    assert response.status_code == 400 and response.get_json()["code"] == "unknown_seats"
    assert counts(db_session) == before


def test_guest_hold_gets_login_url(client, factory, db_session):
    event = factory.event()
    response = hold(client, event, seat_ids(db_session, event, 1))
    assert response.status_code == 401
    assert response.get_json()["login_url"].startswith("/auth/login?next=")
    assert counts(db_session)[0] == 0


def test_an_administrator_cannot_hold(client, factory, db_session, login):
    event = factory.event()
    login(factory.admin())
    before = counts(db_session)
    response = hold(client, event, seat_ids(db_session, event, 1), token=csrf_token(client, "/admin/"))
    assert response.status_code == 403 and response.get_json()["code"] == "forbidden"
    assert counts(db_session) == before


def test_a_session_whose_account_is_gone_must_log_in_again(client, factory, db_session, buyer):
    """The hold reads the account itself (no user load before it): a deleted one holds nothing."""
    event = factory.event()
    token = csrf_token(client, "/")
    db_session.execute(sa.delete(User).where(User.id == buyer.id))
    db_session.commit()
    before = counts(db_session)
    response = hold(client, event, seat_ids(db_session, event, 1), token=token)
    assert response.status_code == 401 and response.get_json()["code"] == "login_required"
    assert counts(db_session) == before


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("{not json", "application/json"),
        ('{"seat_ids": 5}', "application/json"),
        ("[1, 2]", "application/json"),
        ("seat_ids=1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_hold_requests(client, factory, db_session, buyer, body, content_type):
    event = factory.event()
    response = client.post(
        f"/api/events/{event.id}/holds",
        data=body,
        content_type=content_type,
        headers={"X-CSRFToken": csrf_token(client, "/")},
    )
    assert response.status_code == 400
    assert response.get_json()["error"]
    assert counts(db_session)[0] == 0


def test_hold_without_csrf_token(client, factory, db_session, buyer):
    event = factory.event()
    response = hold(client, event, seat_ids(db_session, event, 1), token=False)
    assert response.status_code == 400 and response.get_json()["code"] == "csrf"
    assert counts(db_session)[0] == 0


def test_pay_without_csrf_token(client, factory, db_session, buyer):
    event = factory.event()
    url = hold(client, event, seat_ids(db_session, event, 1)).get_json()["checkout_url"]
    response = client.post(url, data={"method": "card", "card_number": payments.CARD_SUCCEEDS})
    assert response.status_code == 400
    assert db_session.scalar(sa.select(sa.func.count(Payment.id))) == 0


def test_someone_elses_order_is_404(client, factory, db_session, login):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    login(factory.user())
    token = csrf_token(client, "/")
    for method, path, data in [
        ("get", f"/orders/{order.reference}", None),
        ("get", f"/orders/{order.reference}/checkout", None),
        (
            "post",
            f"/orders/{order.reference}/checkout",
            {"method": "card", "card_number": payments.CARD_SUCCEEDS, "csrf_token": token},
        ),
        ("post", f"/orders/{order.reference}/release", {"csrf_token": token}),
        ("get", f"/orders/{order.reference}/wallet", None),
    ]:
        assert getattr(client, method)(path, data=data).status_code == 404, path
    db_session.expire_all()
    assert db_session.get(Order, order.id).status == "pending"


def test_expired_hold_checkout_says_so(client, factory, db_session, buyer, app):
    from datetime import timedelta

    from app.models import utcnow

    event = factory.event()
    order = booking.hold(buyer, event, seat_ids(db_session, event, 1), now=utcnow() - timedelta(minutes=6))
    response = client.get(f"/orders/{order.reference}/checkout", follow_redirects=True)
    assert "hold expired" in response.get_data(as_text=True)
    assert counts(db_session)[2][0] == "available"


def test_pages_need_login(client, factory, db_session):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    for path in ("/my/bookings", f"/orders/{order.reference}", f"/orders/{order.reference}/checkout"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], path


def test_per_order_limit_is_shown_on_the_page(client, factory):
    event = factory.event()
    page = client.get(f"/events/{event.id}").get_data(as_text=True)
    assert re.search(r'data-max-seats="6"', page)


def test_cached_map_shows_a_hold_running_out_without_any_change(client, factory, db_session, app):
    import time
    from datetime import timedelta

    from app.models import utcnow

    event = factory.event(rows=1, columns=2)
    ttl = app.config["HOLD_TTL_SECONDS"]
    booking.hold(factory.user(), event, seat_ids(db_session, event, 1), now=utcnow() - timedelta(seconds=ttl - 1))
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "r"
    time.sleep(1.2)
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "a"


def test_seat_map_is_served_fresh_when_redis_is_down(client, factory, db_session, app, monkeypatch):
    import redis

    from app import extensions

    monkeypatch.setitem(
        app.extensions, "stagepass_redis", redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    )
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    event = factory.event(rows=1, columns=2)
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "a"
    booking.hold(factory.user(), event, seat_ids(db_session, event, 1))
    assert client.get(f"/api/events/{event.id}/seats").get_json()["seats"][0][3] == "r"


def test_cancelled_or_deleted_event_is_not_served_from_cache(client, factory, db_session):
    from app.services import events as event_service

    event = factory.event(rows=1, columns=1)
    assert client.get(f"/api/events/{event.id}/seats").status_code == 200
    event_service.delete_event(event)
    assert client.get(f"/api/events/{event.id}/seats").status_code == 404
