"""Every route, every role: guest, buyer, another buyer (for someone's order), admin.

A route missing from EXPECTED fails the test, so no one adds an unguarded route by accident.
GET requests only: every state change is a POST that also needs a CSRF token (tested elsewhere).
"""
import pytest
import sqlalchemy as sa

from app.models import Booking, Seat
from app.services import booking
from tests.conftest import PASSWORD, csrf_token, log_in

ROLES = ("guest", "buyer", "owner", "admin")
LOGIN, DASHBOARD = "login", "dashboard"
OK, FORBIDDEN, NOT_FOUND, HOME, NO_GET = 200, 403, 404, "home", "no-get"
ADMIN_ONLY = {"guest": LOGIN, "buyer": FORBIDDEN, "owner": FORBIDDEN, "admin": OK}
BUYER_PAGE = {"guest": LOGIN, "buyer": OK, "owner": OK, "admin": DASHBOARD}
OWNERS_ORDER = {"guest": LOGIN, "buyer": NOT_FOUND, "owner": OK, "admin": DASHBOARD}
PUBLIC_BUYER_PAGE = {"guest": OK, "buyer": OK, "owner": OK, "admin": DASHBOARD}
PUBLIC = {role: OK for role in ROLES}
GUESTS_ONLY = {"guest": OK, "buyer": HOME, "owner": HOME, "admin": DASHBOARD}
POST_ONLY = {role: NO_GET for role in ROLES}

EXPECTED = {
    "booking.events": PUBLIC_BUYER_PAGE,
    "booking.event_detail": PUBLIC_BUYER_PAGE,
    "booking.seat_states": PUBLIC,
    "booking.seat_stream": None,  # an endless stream: covered by tests/test_live.py
    "booking.hold_seats": POST_ONLY,
    "booking.my_bookings": BUYER_PAGE,
    "booking.order_detail": OWNERS_ORDER,
    "booking.checkout": OWNERS_ORDER,
    "booking.wallet": {**OWNERS_ORDER, "owner": "wallet"},
    "booking.release": POST_ONLY,
    "auth.login": GUESTS_ONLY,
    "auth.register": GUESTS_ONLY,
    "auth.logout": POST_ONLY,
    "livez": PUBLIC,
    "healthz": None,  # 200 or 503 by the services' health, for everyone: tests/test_jobs.py
    "static": None,
    "admin.event_publish": POST_ONLY,
}


def expected_for(endpoint):
    if endpoint in EXPECTED:
        return EXPECTED[endpoint]
    if endpoint.startswith("admin."):
        return ADMIN_ONLY
    raise AssertionError(f"route {endpoint} has no access rule: add it to EXPECTED in tests/test_access.py")


@pytest.fixture
def world(factory, db_session):
    event = factory.event(rows=1, columns=3)
    owner, other, admin = factory.user(), factory.user(), factory.admin()
    seat_ids = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    order = booking.hold(owner, event, seat_ids[:1])
    booking_id = db_session.scalar(sa.select(Booking.id))
    values = {"event_id": event.id, "reference": order.reference, "booking_id": booking_id, "user_id": owner.id}
    return {"guest": None, "buyer": other, "owner": owner, "admin": admin}, values


def url_for_rule(rule, values):
    url = rule.rule
    for name in rule.arguments:
        url = url.replace(f"<int:{name}>", str(values[name])).replace(f"<{name}>", str(values[name]))
    return url


@pytest.mark.parametrize("role", ROLES)
def test_every_route_for_every_role(app, client, login, world, role):
    users, values = world
    if users[role] is not None:
        login(users[role])
    checked = 0
    for rule in app.url_map.iter_rules():
        expected = expected_for(rule.endpoint)
        if expected is None:
            continue
        outcome = expected[role]
        url = url_for_rule(rule, values)
        if outcome == NO_GET:
            assert "GET" not in rule.methods, url
            continue
        response = client.get(url)
        location = response.headers.get("Location", "")
        if outcome == LOGIN:
            assert response.status_code == 302 and location.startswith("/auth/login"), (role, url, response.status_code)
        elif outcome == DASHBOARD:
            assert response.status_code == 302 and location == "/admin/", (role, url, response.status_code, location)
        elif outcome == HOME:
            assert response.status_code == 302 and location in ("/", "/admin/"), (role, url, response.status_code)
        elif outcome == "wallet":
            assert response.status_code in (200, 302), (role, url, response.status_code)
        else:
            assert response.status_code == outcome, (role, url, response.status_code)
        checked += 1
    assert checked >= 25


def test_each_client_keeps_its_own_login_and_csrf_token(app, factory):
    """A request never sees the user or the CSRF token of another client's request."""
    admin, buyer = factory.admin(), factory.user()
    admins_browser, strangers_browser = app.test_client(), app.test_client()
    log_in(admins_browser, admin)
    assert admins_browser.get("/admin/").status_code == 200
    response = strangers_browser.get("/admin/")
    assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login")
    admins_token = csrf_token(admins_browser, "/admin/")
    strangers_token = csrf_token(strangers_browser)
    assert strangers_token != admins_token
    refused = strangers_browser.post("/auth/login", data={"email": buyer.email, "password": PASSWORD, "csrf_token": admins_token})
    assert refused.status_code == 400
    log_in(strangers_browser, buyer)
    assert strangers_browser.get("/admin/").status_code == 403
    assert admins_browser.get("/admin/").status_code == 200
