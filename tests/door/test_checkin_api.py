"""The door over HTTP: the check-in API's answers, its guards and limits, the pages, the admin's view."""

import csv
import io

import pytest

from app.extensions import db
from app.models import Ticket, User, utcnow
from app.services import checkin, tickets
from tests.admin_support import client_of
from tests.door.support import sold_tickets, staff_user
from tests.invariants import snapshot_rows
from tests.support import csrf_token


@pytest.fixture
def door(app, factory):
    event = factory.event(name="Door Night", rows=2, columns=3)
    sold = sold_tickets(factory, event, 3)
    staff = staff_user(factory)
    client = client_of(app, staff)
    token = csrf_token(client, f"/checkin/{event.id}")
    return event, sold, staff, client, token


def post(client, token, event_id, body, **kwargs):
    return client.post(f"/api/events/{event_id}/checkins", json=body, headers={"X-CSRFToken": token}, **kwargs)


def test_admitted_then_already_checked_in(door):
    event, (ticket, *_), staff, client, token = door
    response = post(client, token, event.id, {"code": tickets.payload_for(ticket), "door": "North"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["result"] == "admitted" and body["seat"] == ticket.seat.label and body["category"] == "Standard"
    assert body["counts"] == {"checked_in": 1, "sold": 3}
    assert body["door"] == "North" and body["checked_in_at"].endswith("Z")
    again = post(client, token, event.id, {"code": tickets.grouped(ticket.code).lower(), "door": "South"})
    assert again.status_code == 409
    body = again.get_json()
    assert body["result"] == body["code"] == "already_checked_in"
    assert body["door"] == "North" and "North" in body["message"] and body["error"] == body["message"]


def test_each_result_has_its_status(door, factory):
    event, (ticket, void, _), staff, client, token = door
    void.revoked_at = utcnow()
    db.session.commit()
    other = factory.event(rows=1, columns=1)
    cases = [
        (event.id, void.code, 410, "void"),
        (other.id, ticket.code, 422, "wrong_event"),
        (event.id, tickets.payload_for(ticket)[:-3], 404, "invalid"),
        (event.id, "x" * 5000, 404, "invalid"),
    ]
    for event_id, code, status, result in cases:
        before = snapshot_rows()
        response = post(client, token, event_id, {"code": code, "door": "North"})
        assert (response.status_code, response.get_json()["result"]) == (status, result), code[:40]
        assert response.get_json()["message"]
        assert snapshot_rows() == before


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="garbled-json"),
        pytest.param(b"[1, 2]", id="a-list"),
        pytest.param(b'{"door": "North"}', id="no-code"),
        pytest.param(b'{"code": 12, "door": "North"}', id="code-not-text"),
        pytest.param(b'{"code": "ABCD", "door": ""}', id="no-door"),
        pytest.param(b'{"code": "ABCD", "door": "North", "offline": "yes"}', id="offline-not-bool"),
        pytest.param(b'{"code": "ABCD", "door": "North", "scanned_at": "soon"}', id="bad-time"),
        pytest.param(b"[" * 1000, id="deep-json"),
    ],
)
def test_malformed_requests_are_400_and_change_nothing(door, body):
    event, _, _, client, token = door
    before = snapshot_rows()
    response = client.post(
        f"/api/events/{event.id}/checkins",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] and response.get_json()["code"]
    assert snapshot_rows() == before


def test_an_unknown_event_is_404(door):
    _, (ticket, *_), _, client, token = door
    response = post(client, token, 999999, {"code": ticket.code, "door": "North"})
    assert response.status_code == 404 and response.get_json()["code"] == "not_found"


def test_the_csrf_header_is_required(door):
    event, (ticket, *_), _, client, _ = door
    response = client.post(f"/api/events/{event.id}/checkins", json={"code": ticket.code, "door": "North"})
    assert response.status_code == 400 and response.get_json()["code"] == "csrf"
    assert db.session.get(Ticket, ticket.id).checked_in_at is None


def test_an_offline_scan_that_meets_an_earlier_one_is_a_conflict_on_the_admin_page(door, app, factory):
    event, (ticket, *_), staff, client, token = door
    post(client, token, event.id, {"code": ticket.code, "door": "North"})
    response = post(
        client,
        token,
        event.id,
        {"code": tickets.payload_for(ticket), "door": "Side", "offline": True, "scanned_at": "2020-01-01T10:00:00Z"},
    )
    assert response.status_code == 409 and response.get_json()["conflict"] is True
    admin = client_of(app, factory.admin())
    page = admin.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert 'id="checkin-conflicts"' in page and ticket.code in page and "2020-01-01 10:00:00" in page
    assert 'id="admin-checked-in">1<' in page and 'id="admin-sold">3<' in page


def test_counts_endpoint(door):
    event, (ticket, *_), _, client, token = door
    post(client, token, event.id, {"code": ticket.code, "door": "North"})
    assert client.get(f"/api/events/{event.id}/checkins/counts").get_json() == {"counts": {"checked_in": 1, "sold": 3}}


def test_check_in_is_rate_limited_per_staff_account(door, app, factory, monkeypatch):
    """A second staff account still gets through when the first is limited."""
    event, (ticket, *_), _, client, token = door
    monkeypatch.setitem(app.config, "RATELIMIT_CHECKIN_PER_USER", "3 per minute")
    from app.extensions import limiter

    monkeypatch.setattr(limiter, "enabled", True)
    statuses = [post(client, token, event.id, {"code": "nothing", "door": "North"}).status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    other = client_of(app, staff_user(factory))
    other_token = csrf_token(other, f"/checkin/{event.id}")
    assert post(other, other_token, event.id, {"code": ticket.code, "door": "South"}).status_code == 200


def test_staff_see_the_door_and_nothing_else_of_the_admin_area(door):
    event, _, staff, client, _ = door
    assert client.get("/checkin/").status_code == 200
    page = client.get(f"/checkin/{event.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "jsqr-1.4.0.js" in html and "js/checkin.js" in html
    for kid, key in tickets.public_keys().items():
        assert kid in html and key in html
    for path in ("/admin/", f"/admin/events/{event.id}", "/admin/users", f"/admin/events/{event.id}/bookings.csv"):
        assert client.get(path).status_code == 403, path


def test_buyers_cannot_check_in(app, factory, door):
    event, (ticket, *_), _, _, _ = door
    buyer = client_of(app, factory.user())
    token = csrf_token(buyer, "/")
    assert buyer.get(f"/checkin/{event.id}").status_code == 403
    response = post(buyer, token, event.id, {"code": ticket.code, "door": "North"})
    assert response.status_code == 403 and response.get_json()["code"] == "forbidden"


def test_staff_log_in_to_the_door(app, factory):
    from tests.support import log_in

    client = app.test_client()
    response = log_in(client, staff_user(factory))
    assert response.headers["Location"] == "/checkin/"


def test_admins_make_staff_in_the_user_form(app, factory):
    admin = client_of(app, factory.admin())
    user = factory.user()
    token = csrf_token(admin, f"/admin/users/{user.id}/edit")
    response = admin.post(
        f"/admin/users/{user.id}/edit",
        data={"csrf_token": token, "name": user.name, "email": user.email, "password": "", "is_staff": "y"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, user.id).is_staff is True


def test_admins_undo_a_check_in(door, app, factory):
    event, (ticket, *_), _, client, token = door
    post(client, token, event.id, {"code": ticket.code, "door": "North"})
    admin = client_of(app, factory.admin())
    page = admin.get(f"/admin/events/{event.id}").get_data(as_text=True)
    assert 'id="latest-check-ins"' in page
    token_admin = csrf_token(admin, f"/admin/events/{event.id}")
    response = admin.post(f"/admin/events/{event.id}/checkins/{ticket.id}/undo", data={"csrf_token": token_admin})
    assert response.status_code == 302
    assert checkin.counts(event.id)["checked_in"] == 0
    assert post(client, token, event.id, {"code": ticket.code, "door": "North"}).status_code == 200


def test_dashboard_and_csv_show_the_door(door, app, factory):
    event, (ticket, *_), _, client, token = door
    post(client, token, event.id, {"code": ticket.code, "door": "North"})
    admin = client_of(app, factory.admin())
    dashboard = admin.get("/admin/").get_data(as_text=True)
    assert 'id="dashboard-checkins"' in dashboard and "Door Night" in dashboard
    rows = list(csv.DictReader(io.StringIO(admin.get(f"/admin/events/{event.id}/bookings.csv").get_data(as_text=True))))
    by_seat = {row["seat"]: row for row in rows}
    checked = by_seat[ticket.seat.label]
    assert checked["ticket_code"] == ticket.code and checked["checked_in_door"] == "North" and checked["checked_in_at"]
    assert all(row["ticket_code"] for row in rows)
