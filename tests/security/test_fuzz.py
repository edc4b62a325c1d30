"""Hostile input: random, mistyped and oversized bodies never cause a 500, and a refused request
never changes a row (every row of every table is compared, not counts)."""

import re
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import sqlalchemy as sa
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from app.admin.events import EVENTS_PER_PAGE
from app.extensions import db
from app.models import Order, OrderStatus, Seat, User, utcnow
from app.services import booking, events, payments
from tests.admin_support import category_lines
from tests.invariants import changed_rows, snapshot_rows
from tests.support import csrf_token, log_in

FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MEGABYTE = 1_000_000
HUGE_INT = 2**70


def non_ascii_digits(number):
    """The same digits in other scripts: fullwidth, Arabic-Indic, Devanagari, Bengali."""
    return [
        number.translate(str.maketrans("0123456789", digits))
        for digits in ("０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯")
    ]


class Oversized:
    """A huge value that prints as a short description (Hypothesis prints the examples it tries)."""

    def __repr__(self):
        return f"<{self.description}>"


class OversizedText(Oversized, str):
    pass


class OversizedBytes(Oversized, bytes):
    pass


class OversizedList(Oversized, list):
    pass


def oversized(value, description):
    big = {str: OversizedText, bytes: OversizedBytes, list: OversizedList}[type(value)](value)
    big.description = description
    return big


# Characters str.isdigit() or int() accept that are not 0-9: ², ①, ٣, ５ ...
digit_like = st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=24)
# Forms get 100 kB of emoji, not 1 MB: the test client's percent-encoding of 1 MB of them alone takes seconds.
OVERSIZED_TEXTS = [
    oversized("x" * MEGABYTE, "1 MB of x"),
    oversized("😀" * 25_000, "100 kB of emoji"),
    oversized("9" * 5000, "5000 nines"),
]
texts = (
    st.text(max_size=300)
    | digit_like
    | st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "😀" * 500,
            "-1",
            "0",
            "1e3",
            "NaN",
            "²",
            "①",
            *OVERSIZED_TEXTS,
        ]
    )
)
HUGE_LISTS = [
    oversized(list(range(1, 100_001)), "the ids 1 to 100,000"),
    oversized(["1"] * 100_000, '100,000 times "1"'),
    oversized([None] * 100_000, "100,000 nulls"),
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-HUGE_INT, max_value=HUGE_INT)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
    | digit_like,
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
seat_id_values = (
    st.integers(min_value=-(2**40), max_value=2**40)
    | st.text(max_size=20)
    | digit_like
    | st.sampled_from(["²", "①", "٣", "５", "1²"])
)
hold_bodies = (
    json_values
    | st.fixed_dictionaries({"seat_ids": json_values})
    | st.fixed_dictionaries({"seat_ids": st.lists(seat_id_values, max_size=12)})
    | st.fixed_dictionaries(
        {
            "seat_ids": st.sampled_from(
                HUGE_LISTS + OVERSIZED_TEXTS + [oversized("😀" * (MEGABYTE // 4), "1 MB of emoji")]
            )
        }
    )
)
card_numbers = (
    st.sampled_from(
        [*payments.SANDBOX_CARDS, "4242 4242 4242 4242", "4242-4242-4242-4242", "4111111111111111", "4242424242424241"]
    )
    | st.sampled_from(non_ascii_digits(payments.CARD_SUCCEEDS) + non_ascii_digits(payments.CARD_DECLINED))
    | st.sampled_from(["²" * 16, "①" * 16, "4242²42424242424", "４２４２ ４２４２ ４２４２ ４２４２"])
    | texts
)
form_texts = st.none() | texts  # None: the field is left out of the form


def form(**fields):
    """The form to post: fields that are None are left out."""
    return {name: value for name, value in fields.items() if value is not None}


# Hypothesis prints the failing example itself, so the checks below only say what went wrong.


def check_refusal_changed_nothing(before, response):
    after = snapshot_rows()
    assert after == before, (response.status_code, changed_rows(before, after))


def check_no_server_error(response):
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:300])


def post_form_checked(client, path, data):
    """POST a form: never a 500, and no row changed unless it was accepted (a redirect)."""
    before = snapshot_rows()
    response = client.post(path, data=data)
    check_no_server_error(response)
    if response.status_code != 302:
        check_refusal_changed_nothing(before, response)
    return response


def luhn_valid(digits):
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def is_card_number(text):
    """What a card form may accept: at most 32 characters, 12-19 ASCII digits with spaces or dashes, Luhn-valid."""
    digits = text.replace(" ", "").replace("-", "")
    return len(text) <= 32 and re.fullmatch(r"[0-9]{12,19}", digits) is not None and luhn_valid(digits)


# --- the seat map's JSON API -----------------------------------------------------------------


def test_fuzzed_hold_requests(client, factory, login):
    event = factory.event(rows=2, columns=2)
    login(factory.user())
    token = csrf_token(client, "/")
    valid = set(db.session.scalars(sa.select(Seat.id)))

    @FUZZ
    @given(body=hold_bodies)
    @example(body={"seat_ids": ["²"]})
    @example(body={"seat_ids": ["①", "٣"]})
    @example(body={"seat_ids": HUGE_LISTS[0]})
    def check(body):
        before = snapshot_rows()
        response = client.post(f"/api/events/{event.id}/holds", json=body, headers={"X-CSRFToken": token})
        check_no_server_error(response)
        assert response.is_json and response.get_json().get("error") or response.status_code == 201
        if response.status_code == 201:
            # a well-formed hold of real seats: undo it so the next example starts clean
            assert {int(i) for i in body["seat_ids"]} <= valid
            reference = response.get_json()["reference"]
            client.post(f"/orders/{reference}/release", data={"csrf_token": token})
        else:
            check_refusal_changed_nothing(before, response)

    check()


def test_fuzzed_raw_bodies_to_the_hold_endpoint(client, factory, login):
    event = factory.event(rows=1, columns=1)
    login(factory.user())
    token = csrf_token(client, "/")
    raw_bodies = st.binary(max_size=2000) | st.sampled_from(
        [
            oversized(b"\xff" * MEGABYTE, "1 MB of 0xff"),
            oversized(b"[" * MEGABYTE, "1 MB of ["),
            oversized(b'{"seat_ids": [' + b"1," * 500_000 + b"1]", "500,001 seat ids of 1"),
        ]
    )

    @FUZZ
    @given(
        raw=raw_bodies,
        content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
    )
    @example(raw=oversized(b"[" * 100_000, "100,000 nested arrays"), content_type="application/json")
    def check(raw, content_type):
        before = snapshot_rows()
        response = client.post(
            f"/api/events/{event.id}/holds", data=raw, content_type=content_type, headers={"X-CSRFToken": token}
        )
        assert response.status_code in (400, 413, 415), response.status_code
        check_refusal_changed_nothing(before, response)

    check()


# --- accounts --------------------------------------------------------------------------------


def test_fuzzed_login_and_registration_forms(client):
    @FUZZ
    @given(name=texts, email=texts, password=texts, remember=texts, next_url=texts)
    def check(name, email, password, remember, next_url):
        before = snapshot_rows()
        token = csrf_token(client, "/auth/register")
        login = client.post(
            "/auth/login",
            data={"email": email, "password": password, "remember_me": remember, "next": next_url, "csrf_token": token},
        )
        check_no_server_error(login)
        register = client.post(
            "/auth/register",
            data={"name": name, "email": email, "password": password, "password2": password, "csrf_token": token},
        )
        check_no_server_error(register)
        if register.status_code == 302:
            db.session.execute(sa.delete(User))
            db.session.commit()
            client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
        check_refusal_changed_nothing(before, register)

    check()


# --- paying ----------------------------------------------------------------------------------


class OpenOrder:
    """A buyer's pending order for one seat, held afresh whenever an example closed the last one."""

    def __init__(self, factory, client, wallet_started=False):
        self.factory = factory
        self.buyer = factory.user()
        self._new_seat()
        self.wallet_started = wallet_started
        self.reference = None
        log_in(client, self.buyer)
        self.token = csrf_token(client, "/")

    def _new_seat(self):
        self.event = self.factory.event(rows=1, columns=1)
        self.seat_id = db.session.scalar(sa.select(Seat.id).where(Seat.event_id == self.event.id))

    def ensure(self):
        """The reference of a pending order (with a wallet payment waiting, if asked)."""
        db.session.expire_all()
        order = db.session.scalar(sa.select(Order).where(Order.reference == self.reference)) if self.reference else None
        if order is not None and order.status == OrderStatus.CONFIRMED:
            # Sold: hold a seat of a new event. Cancelling would need a refund, which the sandbox
            # refuses for orders paid with CARD_REFUND_FAILS (one of the numbers fuzzed).
            self._new_seat()
        if order is None or order.status != OrderStatus.PENDING:
            order = booking.hold(self.buyer, self.event, [self.seat_id])
        if self.wallet_started:
            payments.start_wallet(order, user=self.buyer)
        self.reference = order.reference
        return self.reference


def test_fuzzed_payment_form(client, factory):
    open_order = OpenOrder(factory, client)
    methods = st.sampled_from(["card", "wallet"]) | texts

    @FUZZ
    @given(method=methods | st.none(), card=card_numbers | st.none())
    @example(method="card", card=payments.CARD_REFUND_FAILS)  # sold for good: the next example needs a new seat
    @example(method="card", card=non_ascii_digits(payments.CARD_SUCCEEDS)[0])
    @example(method="card", card="²" * 16)
    def check(method, card):
        reference = open_order.ensure()
        before = snapshot_rows()
        response = client.post(
            f"/orders/{reference}/checkout", data=form(method=method, card_number=card, csrf_token=open_order.token)
        )
        check_no_server_error(response)
        card_text, method = card or "", "card" if method is None else method  # the form's default method
        pays = method == "card" and is_card_number(card_text) or method == "wallet" and len(card_text) <= 32
        if pays:
            assert response.status_code == 302, response.status_code
        else:
            assert response.status_code in (400, 413), response.status_code
            check_refusal_changed_nothing(before, response)

    check()


def test_fuzzed_wallet_form(client, factory):
    open_order = OpenOrder(factory, client, wallet_started=True)
    buttons = form_texts | st.sampled_from(["Approve payment", "Decline"])

    @settings(FUZZ, max_examples=20)  # most examples close the order, and the next one holds and starts again
    @given(approve=buttons, decline=buttons, junk=form_texts)
    @example(approve=None, decline=None, junk=None)
    def check(approve, decline, junk):
        reference = open_order.ensure()
        before = snapshot_rows()
        response = client.post(
            f"/orders/{reference}/wallet",
            data=form(approve=approve, decline=decline, note=junk, csrf_token=open_order.token),
        )
        check_no_server_error(response)
        if approve is None and decline is None:
            # neither button: the buyer decided nothing, so nothing may happen to the payment
            check_refusal_changed_nothing(before, response)
        if (approve, decline) in (("Approve payment", None), (None, "Decline")):
            assert response.status_code == 302 and snapshot_rows() != before, response.status_code

    check()


# --- admin forms -----------------------------------------------------------------------------


def future(days):
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


dates = (
    st.sampled_from(
        [
            future(30),
            future(400),
            future(-1),
            "2031-02-30T20:00",
            "2031-13-01T20:00",
            "9999-12-31T23:59",
            "2031-06-01 20:00",
            "",
        ]
    )
    | texts
)
sizes = (
    st.integers(min_value=-3, max_value=25).map(str)
    | st.sampled_from(["9" * 400, str(2**63), "1.5", "0x10", "٣", "²"])
    | texts
)
prices = (
    st.sampled_from(["25", "12.50", "0", "-1", "10000.01", "0.001", "1e309", "NaN", "Infinity", "9" * 400, "٣٠", "²"])
    | texts
)
colors = st.sampled_from(["#4f7cff", "#FFFFFF", "red", "#12345", "#1234567", "#ggg000"]) | texts
row_labels = st.sampled_from(["", "A", "B", "Z", "AA", "ZZZ", "a", "1", "Ä", "-"]) | texts
category_line = st.tuples(st.sampled_from(["Standard", "Front", ""]) | texts, prices, row_labels, row_labels, colors)


def test_fuzzed_event_forms(client, factory):
    admin = factory.admin()
    log_in(client, admin)
    token = csrf_token(client, "/admin/")
    held = factory.event(rows=2, columns=3)
    booking.hold(
        factory.user(), held, [db.session.scalar(sa.select(Seat.id).where(Seat.event_id == held.id).order_by(Seat.id))]
    )
    held_id = held.id

    @FUZZ
    @given(
        path=st.sampled_from(["/admin/events/new", f"/admin/events/{held_id}/edit"]),
        name=st.sampled_from(["Gala", "  "]) | texts,
        description=form_texts,
        date=dates | st.none(),
        venue=form_texts,
        rows=sizes | st.none(),
        columns=sizes | st.none(),
        lines=st.lists(category_line, max_size=2),
    )
    def check(path, name, description, date, venue, rows, columns, lines):
        data = form(
            name=name, description=description, date=date, venue=venue, rows=rows, columns=columns, csrf_token=token
        )
        post_form_checked(client, path, {**data, **category_lines(*lines)})

    check()


def test_fuzzed_user_forms(client, factory):
    admin = factory.admin()
    target = factory.user()
    log_in(client, admin)
    token = csrf_token(client, "/admin/")
    emails = (
        st.sampled_from(["new@example.com", target.email, admin.email, "no-at-sign", "a@b", " spaced@example.com "])
        | texts
    )

    @FUZZ
    @given(
        path=st.sampled_from(["/admin/users/new", f"/admin/users/{target.id}/edit"]),
        name=form_texts,
        email=emails | st.none(),
        password=st.sampled_from(["long-enough-pw", "short"]) | form_texts,
        is_admin=st.sampled_from(["y", "false", ""]) | form_texts,
    )
    def check(path, name, email, password, is_admin):
        post_form_checked(
            client, path, form(name=name, email=email, password=password, is_admin=is_admin, csrf_token=token)
        )

    check()


def test_fuzzed_cancellation_forms(client, factory):
    admin = factory.admin()
    buyer = factory.user()
    event = factory.event(rows=1, columns=2, categories=[events.CategorySpec("Standard", Decimal("30.00"))])
    seat_ids = db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()
    log_in(client, admin)
    token = csrf_token(client, "/admin/")
    paid = {"order_id": None}

    def paid_order_of_two_seats():
        """A paid order whose two seats are both still live."""
        db.session.expire_all()
        order = db.session.get(Order, paid["order_id"]) if paid["order_id"] else None
        if (
            order is not None
            and order.status == OrderStatus.CONFIRMED
            and all(b.status == "confirmed" for b in order.bookings)
        ):
            return order
        if order is not None and order.status == OrderStatus.CONFIRMED:
            booking.cancel_order(order)
        order = payments.pay_by_card(
            booking.hold(buyer, event, seat_ids), user=buyer, card_number=payments.CARD_SUCCEEDS
        )
        paid["order_id"] = order.id
        return order

    @settings(FUZZ, max_examples=20)  # each example pays for a new order: the reason field needs no more
    @given(
        target=st.sampled_from(["order", "booking"]),
        reason=form_texts | st.sampled_from(["Venue flooded", "r" * 200, "r" * 201]),
    )
    def check(target, reason):
        order = paid_order_of_two_seats()
        path = (
            f"/admin/orders/{order.reference}/cancel"
            if target == "order"
            else f"/admin/bookings/{order.bookings[0].id}/cancel"
        )
        before = snapshot_rows()
        response = client.post(path, data=form(reason=reason, csrf_token=token))
        check_no_server_error(response)
        if reason is None or len(reason.strip()) <= 200:
            assert response.status_code == 302 and snapshot_rows() != before, response.status_code
        else:
            check_refusal_changed_nothing(before, response)

    check()


# --- every page's URL and query string -------------------------------------------------------


PAGES = [
    "/",
    "/events/{id}",
    "/api/events/{id}/seats",
    "/my/bookings",
    "/orders/{id}",
    "/admin/",
    "/admin/events",
    "/admin/events/{id}",
    "/admin/events/{id}/bookings",
    "/admin/events/{id}/bookings.csv",
    "/admin/bookings",
    "/admin/payments",
    "/admin/users",
    "/admin/users/{id}/edit",
    "/admin/bookings/{id}/cancel",
    "/admin/orders/{id}",
]
# url_for() reads _method, _external, _anchor and _scheme itself: a page that passes its query on
# must not let them through.
query_keys = st.sampled_from(
    ["page", "per_page", "status", "q", "event", "next", "_method", "_external", "_anchor", "_scheme"]
) | st.text(max_size=10)
query_values = st.integers(min_value=-HUGE_INT, max_value=HUGE_INT).map(str) | texts.filter(
    lambda text: len(text) < 5000
)
path_ids = (
    st.integers(min_value=0, max_value=HUGE_INT).map(str)
    | st.sampled_from(["1", "-1", "00001", "1.0", "²", "%00"])
    | st.text(max_size=20)
)


def test_fuzzed_urls_and_query_strings(app, factory):
    for _ in range(EVENTS_PER_PAGE):
        factory.event(rows=1, columns=1)  # the events list has a second page, so it renders its pagination links
    event = factory.event(rows=1, columns=2)
    buyer = factory.user()
    booking.hold(buyer, event, db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id)).all()[:1])
    admin_client, buyer_client = app.test_client(), app.test_client()
    log_in(admin_client, factory.admin())
    log_in(buyer_client, buyer)

    @FUZZ
    @given(page=st.sampled_from(PAGES), page_id=path_ids, query=st.dictionaries(query_keys, query_values, max_size=4))
    @example(page="/events/{id}", page_id=str(2**63), query={})
    @example(page="/admin/events", page_id="", query={"page": str(2**63)})
    @example(page="/admin/events", page_id="", query={"_method": "POST"})
    def check(page, page_id, query):
        client = admin_client if page.startswith("/admin") else buyer_client
        before = snapshot_rows()
        response = client.get(page.replace("{id}", quote(page_id, safe="")), query_string=query)
        check_no_server_error(response)
        check_refusal_changed_nothing(before, response)

    check()
