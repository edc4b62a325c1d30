"""Every method of every route, for every role: guest, buyer, the order's owner, door staff, admin.

Each request carries the client's valid CSRF token and a body that succeeds for whoever may send it,
so a refusal is about who asks, not about what was sent. A refused request must change no row; a
request that acts must change some (and the world is built afresh before the next one).
A (route, method) missing from EXPECTED fails the test, so no one adds an unguarded route by accident.
HEAD answers like GET, OPTIONS lists the route's methods, for everyone.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest

from app.services import booking, health, live, payments, seatmap
from tests.admin_support import FUTURE, category_lines, seat_ids
from tests.door.support import sold_tickets, staff_user
from tests.invariants import changed_rows, snapshot_rows
from tests.support import PASSWORD, csrf_token, empty_tables, log_in

ROLES = ("guest", "buyer", "owner", "staff", "admin")


@dataclass(frozen=True)
class Outcome:
    status: int | str
    location: str | None = None  # a redirect's target: {names} from the world, {new_id} for a new row
    changes: bool = False  # the request acts: some row changes
    session: bool = False  # the request logs the client in or out


def redirect(location, **kwargs):
    return Outcome(302, location, **kwargs)


OK, CREATED, LOGIN_JSON, FORBIDDEN, NOT_FOUND, CONFLICT, GONE = (
    Outcome(200),
    Outcome(201, changes=True),
    Outcome(401),
    Outcome(403),
    Outcome(404),
    Outcome(409),
    Outcome(410),
)
LOGIN = Outcome("login")  # 302 to the log-in page, with this path as `next`
STREAM = Outcome("stream")  # 200 text/event-stream, and no subscription left once closed
HEALTH = Outcome("health")  # 200 or 503, as the services' health is right now
HOME, DASHBOARD = redirect("/"), redirect("/admin/")

EVERYONE = {role: OK for role in ROLES}
BUYER_PAGE = {"guest": LOGIN, "buyer": OK, "owner": OK, "staff": OK, "admin": DASHBOARD}
PUBLIC_BUYER_PAGE = {**BUYER_PAGE, "guest": OK}
GUESTS_ONLY = {"guest": OK, "buyer": HOME, "owner": HOME, "staff": redirect("/checkin/"), "admin": DASHBOARD}
ADMIN_PAGE = {"guest": LOGIN, "buyer": FORBIDDEN, "owner": FORBIDDEN, "staff": FORBIDDEN, "admin": OK}
# The door: staff and admins; guests of the JSON API get 401, not a log-in page.
DOOR_PAGE = {"guest": LOGIN, "buyer": FORBIDDEN, "owner": FORBIDDEN, "staff": OK, "admin": OK}
DOOR_API = {**DOOR_PAGE, "guest": LOGIN_JSON}


def admin_action(outcome):
    return {**ADMIN_PAGE, "admin": outcome}


def owners(outcome):
    """An order's page or action: its owner only; another buyer is told it does not exist."""
    return {"guest": LOGIN, "buyer": NOT_FOUND, "owner": outcome, "staff": NOT_FOUND, "admin": DASHBOARD}


EXPECTED = {
    ("booking.events", "GET"): PUBLIC_BUYER_PAGE,
    ("booking.event_detail", "GET"): PUBLIC_BUYER_PAGE,
    ("booking.seat_states", "GET"): EVERYONE,
    ("booking.seat_stream", "GET"): {role: STREAM for role in ROLES},
    ("booking.hold_seats", "POST"): {
        "guest": LOGIN_JSON,
        "buyer": CREATED,
        "owner": CONFLICT,
        "staff": CREATED,  # door staff may buy tickets like anyone
        "admin": FORBIDDEN,
    },
    # The world's event has no room in front of it: the room's pages send buyers to the event.
    ("booking.waiting_room", "GET"): {
        **BUYER_PAGE,
        "buyer": redirect("/events/{event_id}"),
        "owner": redirect("/events/{event_id}"),
        "staff": redirect("/events/{event_id}"),
    },
    ("booking.waiting_room_enter", "GET"): {
        **BUYER_PAGE,
        "buyer": redirect("/events/{event_id}"),
        "owner": redirect("/events/{event_id}"),
        "staff": redirect("/events/{event_id}"),
    },
    ("booking.waiting_room_status", "GET"): {**EVERYONE, "guest": LOGIN_JSON},
    ("booking.waiting_room_stream", "GET"): {**{role: STREAM for role in ROLES}, "guest": LOGIN},
    ("booking.my_bookings", "GET"): BUYER_PAGE,
    ("booking.order_detail", "GET"): owners(OK),
    ("booking.checkout", "GET"): owners(OK),
    ("booking.checkout", "POST"): owners(redirect("/orders/{reference}", changes=True)),
    ("booking.wallet", "GET"): owners(OK),
    ("booking.wallet", "POST"): owners(redirect("/orders/{reference}", changes=True)),
    ("booking.release", "POST"): owners(redirect("/my/bookings", changes=True)),
    ("booking.order_tickets", "GET"): owners(OK),
    ("booking.order_tickets_pdf", "GET"): owners(NOT_FOUND),  # the order is pending: no tickets yet
    ("auth.login", "GET"): GUESTS_ONLY,
    ("auth.login", "POST"): {**GUESTS_ONLY, "guest": redirect("/", session=True)},
    ("auth.register", "GET"): GUESTS_ONLY,
    ("auth.register", "POST"): {**GUESTS_ONLY, "guest": redirect("/", changes=True, session=True)},
    ("auth.logout", "POST"): {
        "guest": LOGIN,
        **{role: redirect("/", session=True) for role in ("buyer", "owner", "staff", "admin")},
    },
    ("livez", "GET"): EVERYONE,
    ("healthz", "GET"): {role: HEALTH for role in ROLES},
    ("static", "GET"): EVERYONE,
    ("admin.dashboard", "GET"): ADMIN_PAGE,
    ("admin.events_list", "GET"): ADMIN_PAGE,
    ("admin.event_new", "GET"): ADMIN_PAGE,
    ("admin.event_new", "POST"): admin_action(redirect("/admin/events/{new_id}", changes=True)),
    ("admin.event_detail", "GET"): ADMIN_PAGE,
    ("admin.event_edit", "GET"): ADMIN_PAGE,
    ("admin.event_waiting_room_pause", "POST"): admin_action(redirect("/admin/events/{event_id}")),
    ("admin.event_waiting_room_resume", "POST"): admin_action(redirect("/admin/events/{event_id}")),
    ("admin.event_edit", "POST"): admin_action(redirect("/admin/events/{event_id}", changes=True)),
    ("admin.event_publish", "POST"): admin_action(redirect("/admin/events/{event_id}")),  # already published
    ("admin.event_cancel", "GET"): ADMIN_PAGE,
    ("admin.event_cancel", "POST"): admin_action(redirect("/admin/events/{event_id}", changes=True)),
    ("admin.event_delete", "GET"): ADMIN_PAGE,
    ("admin.event_delete", "POST"): admin_action(redirect("/admin/events/{event_id}")),  # refused: a seat is held
    ("admin.bookings", "GET"): ADMIN_PAGE,
    ("admin.bookings_csv", "GET"): ADMIN_PAGE,
    ("admin.order_detail", "GET"): ADMIN_PAGE,
    ("admin.order_cancel", "GET"): ADMIN_PAGE,
    ("admin.order_cancel", "POST"): admin_action(redirect("/admin/orders/{reference}", changes=True)),
    ("admin.booking_cancel", "GET"): ADMIN_PAGE,
    ("admin.booking_cancel", "POST"): admin_action(redirect("/admin/orders/{reference}", changes=True)),
    # refused: the order is pending, so it has no confirmation to resend
    ("admin.order_resend_confirmation", "POST"): admin_action(redirect("/admin/orders/{reference}")),
    ("admin.payments", "GET"): ADMIN_PAGE,
    ("admin.users", "GET"): ADMIN_PAGE,
    ("admin.user_new", "GET"): ADMIN_PAGE,
    ("admin.user_new", "POST"): admin_action(redirect("/admin/users", changes=True)),
    ("admin.user_edit", "GET"): ADMIN_PAGE,
    ("admin.user_edit", "POST"): admin_action(redirect("/admin/users", changes=True)),
    ("admin.user_delete", "GET"): ADMIN_PAGE,
    ("admin.user_delete", "POST"): admin_action(redirect("/admin/users/{user_id}/edit")),  # refused: the owner ordered
    ("admin.audit_log", "GET"): ADMIN_PAGE,
    ("admin.audit_csv", "GET"): ADMIN_PAGE,
    ("admin.cancellation", "GET"): admin_action(NOT_FOUND),  # no such run in this world
    ("admin.cancellation_progress", "GET"): admin_action(NOT_FOUND),
    ("admin.cancellation_retry", "POST"): admin_action(NOT_FOUND),
    # refused: the event is not cancelled
    ("admin.event_cancel_retry", "POST"): admin_action(redirect("/admin/events/{event_id}")),
    ("admin.orders_cancel", "POST"): admin_action(redirect("/admin/bookings")),  # refused: nothing selected
    ("checkin.index", "GET"): DOOR_PAGE,
    ("checkin.scanner", "GET"): DOOR_PAGE,
    ("checkin.checkin_counts", "GET"): DOOR_API,
    # The body is the code of the world's sold ticket: checked in by whoever may.
    ("checkin.check_in", "POST"): {
        **DOOR_API,
        "staff": Outcome(200, changes=True),
        "admin": Outcome(200, changes=True),
    },
    ("checkin.undo", "POST"): admin_action(redirect("/admin/events/{event_id}")),  # refused: not checked in
    # The waiting list. The world's event still has a free seat, so joining is refused (409), and
    # its list has no entry {entry_id}: acting on it is "not found" for whoever may act at all.
    ("booking.waitlist_join", "POST"): {
        **BUYER_PAGE,
        "guest": LOGIN,
        "buyer": CONFLICT,
        "owner": CONFLICT,
        "staff": CONFLICT,
    },
    ("booking.waitlist_leave", "POST"): owners(NOT_FOUND),
    ("booking.waitlist_accept", "POST"): owners(NOT_FOUND),
    ("booking.waitlist_decline", "POST"): owners(NOT_FOUND),
    ("booking.extend_hold", "POST"): owners(redirect("/orders/{reference}/checkout", changes=True)),
    ("admin.waitlist_skip", "POST"): admin_action(NOT_FOUND),
    ("admin.waitlist_end_offer", "POST"): admin_action(NOT_FOUND),
    ("admin.waitlist_switch", "POST"): admin_action(redirect("/admin/events/{event_id}#waitlist", changes=True)),
    ("admin.waitlist_csv", "GET"): ADMIN_PAGE,
}


def expected_for(endpoint, method, role):
    if method == "HEAD":
        method = "GET"
    if method == "OPTIONS":
        return OK
    if (endpoint, method) not in EXPECTED:
        raise AssertionError(
            f"{method} {endpoint} has no access rule: add it to EXPECTED in tests/security/test_access.py"
        )
    return EXPECTED[(endpoint, method)][role]


def event_form(name, rows, columns):
    return {
        "name": name,
        "description": "",
        "date": FUTURE.strftime("%Y-%m-%dT%H:%M"),
        "venue": "Main Hall",
        "rows": str(rows),
        "columns": str(columns),
        **category_lines(("Standard", "25.00", "", "")),
    }


class World:
    """An event with three seats, a buyer holding one of them (wallet payment started), another
    buyer, door staff, an admin, a ticket sold to someone else, and a test client logged in as the
    role under test."""

    def __init__(self, app, factory, role):
        empty_tables()
        seatmap.forget_rendered_maps()
        event = factory.event(rows=1, columns=3)
        self.users = {
            "buyer": factory.user(),
            "owner": factory.user(),
            "staff": staff_user(factory),
            "admin": factory.admin(),
            "guest": None,
        }
        ids = seat_ids(event)
        self.ticket = sold_tickets(factory, event, 1, seats=ids[2:])[0]
        order = booking.hold(self.users["owner"], event, ids[:1])
        payments.start_wallet(order, user=self.users["owner"])
        self.values = {
            "event_id": event.id,
            "reference": order.reference,
            "booking_id": order.bookings[0].id,
            "user_id": self.users["owner"].id,
            "filename": "css/app.css",
            "ticket_id": self.ticket.id,
            "run_id": "0123456789abcdef",
            "entry_id": 999999,
            "state": "closed",
        }
        self.free_seat_id = ids[1]
        self.client = app.test_client()
        if self.users[role] is not None:
            log_in(self.client, self.users[role])
        self.token = csrf_token(self.client, {"guest": "/auth/login", "admin": "/admin/"}.get(role, "/"))

    def body(self, endpoint):
        """The form (or JSON) that succeeds for whoever may send it."""
        forms = {
            "booking.checkout": {"method": "card", "card_number": payments.CARD_SUCCEEDS},
            "booking.wallet": {"approve": "Approve payment"},
            "auth.login": {"email": self.users["buyer"].email, "password": PASSWORD},
            "auth.register": {
                "name": "New Buyer",
                "email": "new-buyer@example.com",
                "password": PASSWORD,
                "password2": PASSWORD,
            },
            "admin.event_new": event_form("Another Event", 2, 2),
            "admin.event_edit": event_form("Renamed Event", 1, 3),
            "admin.user_new": {"name": "Made By Admin", "email": "made-by-admin@example.com", "password": PASSWORD},
            "admin.user_edit": {"name": "Renamed Buyer", "email": self.users["owner"].email, "password": ""},
        }
        if endpoint == "booking.hold_seats":
            return {"json": {"seat_ids": [self.free_seat_id]}}
        if endpoint == "checkin.check_in":
            return {"json": {"code": self.ticket.code, "door": "Main entrance"}}
        return {"data": {"csrf_token": self.token, **forms.get(endpoint, {})}}

    def url(self, rule):
        _, url = rule.build({name: self.values[name] for name in rule.arguments})
        return url


def send(world, rule, method):
    url = world.url(rule)
    headers = {"X-CSRFToken": world.token}
    if method in ("GET", "HEAD", "OPTIONS"):
        return url, world.client.open(url, method=method, headers=headers)
    return url, world.client.open(url, method=method, headers=headers, **world.body(rule.endpoint))


def mismatch(outcome, rule, method, url, response, world):
    """Why the response is not the expected outcome, or None."""
    status, location = response.status_code, response.headers.get("Location")
    if outcome.status == "login":
        # Back to the page after logging in; a POST-only URL would answer 405, so none (no Referer here).
        wanted_next = [url] if "GET" in rule.methods else None
        target = urlsplit(location or "")
        if status == 302 and target.path == "/auth/login" and parse_qs(target.query).get("next") == wanted_next:
            return None
        return f"expected a redirect to log in with next={wanted_next}, got {status} {location}"
    if outcome.status == "stream":
        if status == 200 and response.mimetype == "text/event-stream":
            return None
        return f"expected an event stream, got {status} {response.mimetype}"
    if outcome.status == "health":
        expected = 200 if health.report()["healthy"] else 503
        return None if status == expected and response.is_json else f"expected {expected} (health), got {status}"
    if status != outcome.status:
        return f"expected {outcome.status}, got {status} {location or response.get_data(as_text=True)[:200]}"
    if method == "OPTIONS" and set(response.headers["Allow"].split(", ")) != rule.methods:
        return f"OPTIONS allows {response.headers['Allow']}, the route has {sorted(rule.methods)}"
    if outcome.location is not None:
        expected = outcome.location.format(**world.values, new_id="NEWID")
        if not re.fullmatch(re.escape(expected).replace("NEWID", r"\d+"), location or ""):
            return f"expected a redirect to {expected}, got {location}"
    return None


def every_route_and_method(app):
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint)):
        for method in sorted(rule.methods):
            yield rule, method


@pytest.mark.parametrize("role", ROLES)
def test_every_method_of_every_route_for_every_role(app, factory, role):
    hub = live.hub()
    world = World(app, factory, role)
    failures, checked = [], set()
    for rule, method in every_route_and_method(app):
        outcome = expected_for(rule.endpoint, method, role)
        checked.add((rule.endpoint, "GET" if method == "HEAD" else method))
        before, streams = snapshot_rows(), hub.stream_count()
        url, response = send(world, rule, method)
        problem = mismatch(outcome, rule, method, url, response, world)
        response.close()
        after = snapshot_rows()
        if problem is None and outcome.changes and after == before:
            problem = "expected it to act, but no row changed"
        if problem is None and not outcome.changes and after != before:
            problem = f"changed rows: {changed_rows(before, after)}"
        if problem is None and hub.stream_count() != streams:
            problem = f"left {hub.stream_count() - streams} seat-map subscription(s) open after the response was closed"
        if problem:
            failures.append(f"{role} {method} {url}: {problem}")
        if outcome.changes or outcome.session or after != before:
            world = World(app, factory, role)
    stale = set(EXPECTED) - checked
    assert not stale, f"EXPECTED names routes the app does not have: {sorted(stale)}"
    assert not failures, "\n".join(failures)


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
    refused = strangers_browser.post(
        "/auth/login", data={"email": buyer.email, "password": PASSWORD, "csrf_token": admins_token}
    )
    assert refused.status_code == 400
    log_in(strangers_browser, buyer)
    assert strangers_browser.get("/admin/").status_code == 403
    assert admins_browser.get("/admin/").status_code == 200
