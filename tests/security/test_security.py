"""Headers, cookies, redirects, inline code and rate limits."""

import logging
import re
import time
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from app import limits
from app.extensions import db, limiter
from app.models import Payment, Seat, User
from app.services import accounts, booking, payments
from tests.invariants import assert_invariants
from tests.redis_server import PrivateRedis
from tests.support import PASSWORD, ROOT, csrf_token, log_in


def test_security_headers_on_pages_json_and_errors(client, factory):
    event = factory.event()
    for path in ("/", f"/api/events/{event.id}/seats", "/no-such-page", "/auth/login"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]+)", policy).group(1)
        assert script_src.strip() == "'self'", policy
        assert "unsafe-eval" not in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_no_inline_scripts_handlers_or_style_attributes():
    # Emails are read by mail clients, not under our CSP, and many of those only honour inline styles.
    pages = [path for path in (ROOT / "templates").rglob("*.html") if "email" not in path.parent.parts]
    offenders = []
    for path in pages + list((ROOT / "static" / "js").rglob("*.js")):
        text = path.read_text()
        if path.suffix == ".html":
            for script in re.findall(r"<script\b[^>]*>", text):
                # A JSON data block is data the browser never runs; the CSP does not apply to it.
                if "src=" not in script and 'type="application/json"' not in script:
                    offenders.append(f"{path}: inline {script}")
            for handler in re.findall(r"\son[a-z]+\s*=", text):
                offenders.append(f"{path}: handler {handler.strip()}")
            for _style in re.findall(r"\sstyle\s*=", text):
                offenders.append(f"{path}: style attribute")
        if "eval(" in text or "new Function" in text:
            offenders.append(f"{path}: eval")
    assert offenders == []


def style_src(response):
    return re.search(r"style-src ([^;]+)", response.headers["Content-Security-Policy"]).group(1).split()


def two_colour_event(factory):
    from app.services import events

    return factory.event(
        categories=[
            events.CategorySpec("Front", Decimal("40"), "#aa3300", 1, 1),
            events.CategorySpec("Back", Decimal("20"), "#0055ee"),
        ]
    )


@pytest.mark.parametrize("page", ["events", "admin event"])
def test_category_colours_come_from_a_style_element_with_this_responses_nonce(client, factory, login, page):
    event = two_colour_event(factory)
    if page == "admin event":
        login(factory.admin())
    path = "/" if page == "events" else f"/admin/events/{event.id}"
    nonces = []
    for _ in range(2):
        response = client.get(path)
        html = response.get_data(as_text=True)
        nonce = re.search(r'<style nonce="([^"]+)">([^<]*)</style>', html)
        assert nonce, html[:2000]
        assert style_src(response) == ["'self'", f"'nonce-{nonce.group(1)}'"]
        for category in event.price_categories:
            assert f'[data-cat="{category.id}"]{{--cat:{category.color}}}' in nonce.group(2)
            assert f'data-cat="{category.id}"' in html.split("</style>", 1)[1]
        nonces.append(nonce.group(1))
    assert nonces[0] != nonces[1]


@pytest.mark.browser
def test_pages_without_category_colours_allow_no_inline_style(client):
    assert style_src(client.get("/auth/login")) == ["'self'"]


def test_only_valid_colours_reach_the_style_element(app):
    from types import SimpleNamespace

    from app.security import category_styles

    with app.test_request_context():
        css = str(
            category_styles([SimpleNamespace(id=1, color="#abc"), SimpleNamespace(id=2, color="red}</style><script>")])
        )
    assert '[data-cat="1"]{--cat:#abc}' in css and '"2"' not in css and "<script>" not in css


def test_session_cookies_are_http_only_and_lax(client, factory):
    user = factory.user()
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": PASSWORD, "remember_me": "y", "csrf_token": csrf_token(client)},
    )
    cookies = response.headers.getlist("Set-Cookie")
    for name in ("session=", "remember_token="):
        cookie = next(c for c in cookies if c.startswith(name))
        assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie


def test_cookies_are_secure_in_production():
    from config import ProductionConfig

    assert ProductionConfig.SESSION_COOKIE_SECURE and ProductionConfig.REMEMBER_COOKIE_SECURE


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "/%2F%2Fevil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "http:/evil.example",
        "https://evil.example",
        "/\tevil",
        " //evil.example",
        "javascript:alert(1)",
        "data:text/html,hi",
    ],
)
def test_hostile_next_urls_are_refused(client, factory, target):
    user = factory.user()
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": PASSWORD, "next": target, "csrf_token": csrf_token(client)},
    )
    location = response.headers["Location"]
    assert location in ("/", "/%2F%2Fevil.example"), location


def login_redirect_next(response):
    """Where the log-in page that `response` sends a guest to will return them (None: nowhere in particular)."""
    assert response.status_code == 302, response.status_code
    location = urlsplit(response.headers["Location"])
    assert location.path == "/auth/login", location
    return parse_qs(location.query).get("next", [None])[0]


def test_a_guest_posting_to_a_post_only_page_comes_back_to_the_page_they_posted_from(client, factory):
    buyer = factory.user()
    event = factory.event()
    order = booking.hold(buyer, event, event_seat_ids(event)[:1])
    order_page = f"/orders/{order.reference}"
    release = client.post(
        f"{order_page}/release",
        data={"csrf_token": csrf_token(client)},
        headers={"Referer": f"http://localhost{order_page}"},
    )
    assert login_redirect_next(release) == order_page
    logged_in = attempt_login(client, buyer.email, PASSWORD, next=order_page)
    assert logged_in.headers["Location"] == order_page
    assert client.get(order_page).status_code == 200


@pytest.mark.parametrize("referrer", [None, "https://evil.example/orders/X", "http://localhost//evil.example"])
def test_a_guest_posting_to_a_post_only_page_is_not_sent_back_to_it_or_off_site(client, factory, referrer):
    headers = {"Referer": referrer} if referrer else {}
    response = client.post("/orders/NOSUCHREF/release", data={"csrf_token": csrf_token(client)}, headers=headers)
    assert login_redirect_next(response) is None


def test_a_guest_asking_for_a_page_comes_back_to_it(client):
    assert login_redirect_next(client.get("/my/bookings?page=2")) == "/my/bookings?page=2"


# --- rate limits -----------------------------------------------------------------------------


@pytest.fixture
def limits_on(app, redis_client):
    limiter.enabled = True
    limiter.reset()
    yield app.config


def assert_limited(response, *, as_json=False):
    """Refused over a limit: 429, Retry-After in seconds, and a message saying to wait."""
    assert response.status_code == 429, response.get_data(as_text=True)[:300]
    assert 0 < int(response.headers["Retry-After"]) <= 3600  # until the broken limit's window ends
    assert not any(name.startswith("X-RateLimit") for name, _value in response.headers)
    if as_json:
        body = response.get_json()
        assert body["code"] == "rate_limited" and "Too many attempts" in body["error"], body
    else:
        page = response.get_data(as_text=True)
        assert "Slow down" in page and "Too many attempts" in page and "try again" in page


def attempt_login(client, email, password="wrong-password", next="", **headers):
    return client.post(
        "/auth/login",
        data={"email": email, "password": password, "next": next, "csrf_token": csrf_token(client)},
        headers=headers,
    )


def log_in_as(client, user):
    """Log the client out (if it was in) and in as `user`: one browser, one address, another buyer."""
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    log_in(client, user)
    return csrf_token(client, "/")


def hold(client, event, seat_id, token):
    return client.post(f"/api/events/{event.id}/holds", json={"seat_ids": [seat_id]}, headers={"X-CSRFToken": token})


def held_checkout_url(client, event, seat_id, token):
    held = hold(client, event, seat_id, token)
    assert held.status_code == 201, held.get_data(as_text=True)
    return held.get_json()["checkout_url"]


def pay(client, checkout_url, token, card_number=payments.CARD_SUCCEEDS):
    return client.post(checkout_url, data={"method": "card", "card_number": card_number, "csrf_token": token})


def event_seat_ids(event):
    return db.session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id)).all()


def payment_count():
    return db.session.scalar(sa.select(sa.func.count(Payment.id)))


def test_login_is_limited_per_account_with_retry_after(client, factory, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_ACCOUNT"] = "2 per minute"
    user = factory.user()
    assert [attempt_login(client, user.email).status_code for _ in range(2)] == [400, 400]
    refused = attempt_login(client, user.email)
    assert_limited(refused)
    assert int(refused.headers["Retry-After"]) <= 60  # this minute's window ends within a minute
    assert_limited(attempt_login(client, user.email, PASSWORD))
    assert attempt_login(client, factory.user().email, PASSWORD).status_code == 302


def test_limits_wait_for_a_redis_connection_instead_of_failing_open(client, factory, limits_on):
    """Every connection of the limits' pool busy (a rush: more requests at once than connections):
    the next request waits for one to come back. redis-py's own pool said "Too many connections",
    which the limiter would take for a dead Redis."""
    import threading

    pool = limiter.storage.storage.connection_pool
    busy = [pool.get_connection() for _ in range(pool.max_connections)]
    threading.Timer(0.3, pool.release, [busy.pop()]).start()
    try:
        assert attempt_login(client, factory.user().email).status_code == 400
        assert not limiter.failing_open
    finally:
        for connection in busy:
            pool.release(connection)


def test_login_is_limited_per_ip_across_accounts(client, factory, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_IP"] = "2 per minute"
    assert [attempt_login(client, factory.user().email).status_code for _ in range(2)] == [400, 400]
    assert_limited(attempt_login(client, factory.user().email, PASSWORD))
    assert "Log out" not in client.get("/").get_data(as_text=True)


VICTIM = "victim@example.com"
# The same address in other cases and spaces, and look-alikes that MariaDB's accent-insensitive
# collations (utf8mb4_general_ci) took for it.
SPELLINGS = [
    VICTIM,
    "VICTIM@example.com",
    " Victim@Example.COM ",
    "vïctim@example.com",
    "vìctim@example.com",
    "víctim@example.com",
    "vîctim@example.com",
]


def test_login_limit_per_account_counts_the_account_whatever_the_spelling(client, factory, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_ACCOUNT"] = "2 per minute"
    victim = factory.user(email=VICTIM)
    finding = [
        spelling for spelling in SPELLINGS if getattr(accounts.find_user_by_email(spelling), "id", None) == victim.id
    ]
    assert len(finding) >= 3
    statuses = [attempt_login(client, spelling).status_code for spelling in finding]
    assert statuses == [400, 400] + [429] * (len(finding) - 2), list(zip(finding, statuses, strict=False))
    assert_limited(attempt_login(client, finding[-1], PASSWORD))


def test_login_limit_per_account_for_unknown_addresses_counts_the_normalised_address(client, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_ACCOUNT"] = "2 per minute"
    emails = ("nobody@example.com", "NOBODY@example.com", " Nobody@Example.com ")
    assert [attempt_login(client, email).status_code for email in emails] == [400, 400, 429]


PER_BUYER_OR_IP = pytest.mark.parametrize(
    "per, next_buyer_refused", [("USER", False), ("IP", True)], ids=["per buyer", "per IP"]
)


@PER_BUYER_OR_IP
def test_hold_is_limited_as_json(client, factory, limits_on, per, next_buyer_refused):
    """Over a limit of 2 the buyer's third hold is refused; the next buyer at the address only if it is per IP."""
    limits_on[f"RATELIMIT_HOLD_PER_{per}"] = "2 per minute"
    event = factory.event()
    seat_ids = event_seat_ids(event)
    token = log_in_as(client, factory.user())
    assert 429 not in [hold(client, event, seat_id, token).status_code for seat_id in seat_ids[:2]]
    assert_limited(hold(client, event, seat_ids[2], token), as_json=True)
    token = log_in_as(client, factory.user())
    next_hold = hold(client, event, seat_ids[3], token)
    if next_buyer_refused:
        assert_limited(next_hold, as_json=True)
    else:
        assert next_hold.status_code == 201
    assert db.session.get(Seat, seat_ids[2]).status == "available"


def test_a_holds_two_limits_are_counted_in_one_redis_round_trip(client, factory, limits_on, monkeypatch):
    event = factory.event()
    token = log_in_as(client, factory.user())
    refused = client.post(f"/api/events/{event.id}/holds", json={}, headers={"X-CSRFToken": token})
    assert refused.status_code == 400  # counted all the same, and the script is loaded by now
    redis_client, commands = limiter.storage.storage, []
    execute = redis_client.execute_command

    def recorded(*args, **options):
        commands.append(args[0])
        return execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", recorded)
    assert hold(client, event, event_seat_ids(event)[0], token).status_code == 201
    assert commands == ["EVALSHA"]
    assert len(redis_client.keys("LIMITS:*booking.hold_seats*")) == 2  # per buyer and per IP


def test_limits_count_in_memory_storage_when_configured_so(app, client, factory, monkeypatch):
    """RATELIMIT_STORAGE_URI=memory:// (one process, e.g. a laptop): counted by the limits library, not failing open."""
    monkeypatch.setitem(app.config, "RATELIMIT_STORAGE_URI", "memory://")
    limiter.init_app(app)
    limiter.enabled = True
    app.config["RATELIMIT_LOGIN_PER_IP"] = "2 per minute"
    assert [attempt_login(client, factory.user().email).status_code for _ in range(2)] == [400, 400]
    assert_limited(attempt_login(client, factory.user().email))
    assert limits.status() == {"ok": True, "detail": "enforced through memory://"}


@PER_BUYER_OR_IP
def test_pay_is_limited(client, factory, limits_on, per, next_buyer_refused):
    """Over a limit of 2 the buyer's third payment is refused; the next buyer's only if it is per IP."""
    limits_on[f"RATELIMIT_PAY_PER_{per}"] = "2 per minute"
    event = factory.event()
    seat_ids = event_seat_ids(event)
    token = log_in_as(client, factory.user())
    checkout_url = held_checkout_url(client, event, seat_ids[0], token)
    assert [pay(client, checkout_url, token, card_number="").status_code for _ in range(2)] == [400, 400]
    assert_limited(pay(client, checkout_url, token))
    assert client.get(checkout_url).status_code == 200  # looking at the checkout is not paying
    token = log_in_as(client, factory.user())
    next_payment = pay(client, held_checkout_url(client, event, seat_ids[1], token), token)
    if next_buyer_refused:
        assert_limited(next_payment)
        assert payment_count() == 0
    else:
        assert next_payment.status_code == 302 and payment_count() == 1


def test_registration_is_limited_per_ip(client, limits_on):
    limits_on["RATELIMIT_REGISTER_PER_IP"] = "1 per hour"
    token = csrf_token(client, "/auth/register")
    data = {"name": "A", "password": "long-password", "password2": "long-password", "csrf_token": token}
    assert client.post("/auth/register", data={**data, "email": "a1@example.com"}).status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    assert_limited(
        client.post(
            "/auth/register",
            data={**data, "email": "a2@example.com", "csrf_token": csrf_token(client, "/auth/register")},
        )
    )


# --- email addresses -------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["vïctim@example.com", "vîctim@example.com", "víctim@example.com"])
def test_an_accented_address_is_another_address(client, factory, spelling):
    factory.user(email=VICTIM)
    assert accounts.find_user_by_email(spelling) is None
    response = client.post(
        "/auth/login", data={"email": spelling, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 400 and "Wrong email or password" in response.get_data(as_text=True)
    assert factory.user(email=spelling.upper()).email == spelling  # an account of its own, stored lower-cased
    assert accounts.find_user_by_email(VICTIM).email == VICTIM


@pytest.mark.mariadb
def test_emails_compare_with_a_binary_collation_on_mariadb(app):
    collation = db.session.scalar(
        sa.text(
            "SELECT collation_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND table_name = 'users' AND column_name = 'email'"
        )
    )
    assert collation == "utf8mb4_bin"


def test_the_migration_lower_cases_stored_emails(app):
    from flask_migrate import downgrade, upgrade

    downgrade(revision="0002")
    try:
        db.session.execute(
            sa.text(
                "INSERT INTO users (email, name, password_hash, is_admin, created_at, updated_at) "
                "VALUES (' Mixed@Example.COM', 'Mixed', 'x', 0, '2026-01-01', '2026-01-01')"
            )
        )
        db.session.commit()
    finally:
        upgrade()
    assert db.session.scalar(sa.select(User.email)) == "mixed@example.com"


# --- rate-limit storage down -----------------------------------------------------------------


@pytest.fixture
def limits_on_private_redis(app, tmp_path, monkeypatch):
    """Limits on, and the app's Redis (limits, live map, jobs) a redis-server of this test's own."""
    from app import extensions

    server = PrivateRedis(tmp_path).start()
    for name in ("REDIS_URL", "RATELIMIT_STORAGE_URI"):
        monkeypatch.setitem(app.config, name, server.url)
    monkeypatch.delitem(app.extensions, "stagepass_redis", raising=False)
    monkeypatch.setattr(extensions, "_redis_down_until", [0.0])
    limiter.init_app(app)
    limiter.enabled = True
    yield server
    server.stop()


def hold_and_pay(client, event, seat_id, token):
    paid = pay(client, held_checkout_url(client, event, seat_id, token), token)
    assert paid.status_code == 302 and "/orders/" in paid.headers["Location"], paid.get_data(as_text=True)


def test_limits_fail_open_when_their_redis_stops(app, client, factory, runner, limits_on_private_redis, caplog):
    private_redis = limits_on_private_redis
    """A real Redis counts the limits, then dies: logins, holds and payments go on, and it is said once."""
    event = factory.event(rows=1, columns=4)
    seat_ids = event_seat_ids(event)
    buyers = [factory.user() for _ in range(3)]
    log_in(client, buyers[0])
    token = csrf_token(client, "/")
    hold_and_pay(client, event, seat_ids[0], token)
    assert private_redis.client.keys("LIMITS:*"), "the limits counted in the private Redis"

    private_redis.stop()
    caplog.set_level(logging.INFO, logger="app.extensions")
    for buyer, seat_id in zip(buyers[1:], seat_ids[1:], strict=False):
        client.post("/auth/logout", data={"csrf_token": token})
        log_in(client, buyer)
        token = csrf_token(client, "/")
        hold_and_pay(client, event, seat_id, token)

    outage = [record for record in caplog.records if "failing open" in record.getMessage()]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING, caplog.text
    assert private_redis.url in outage[0].getMessage()
    health = runner.invoke(args=["health"])
    assert health.exit_code != 0 and "failing open" in health.output, health.output
    healthz = client.get("/healthz")
    assert healthz.status_code == 503
    assert healthz.get_json()["checks"]["rate limits"]["ok"] is False
    assert "failing open" in healthz.get_json()["checks"]["rate limits"]["detail"]
    assert_invariants()

    private_redis.start()  # a limited request looks again after 1, 2, 4... seconds of the outage
    deadline = time.monotonic() + 60
    while not [record for record in caplog.records if "shared again" in record.getMessage()]:
        assert time.monotonic() < deadline, "the limiter never noticed its Redis was back"
        hold(client, event, seat_ids[-1], token)  # refused (held already, or over the limit): counted
        time.sleep(0.2)
    assert not limiter.failing_open and limits.status()["ok"]
    assert len([record for record in caplog.records if "failing open" in record.getMessage()]) == 1


def test_no_limiter_state_is_left_by_the_test_before(client, factory, redis_client):
    """The test above bound the limiter to a Redis it then stopped: nothing of that remains."""
    assert not limiter.enabled and not limiter.failing_open
    limiter.enabled = True
    log_in(client, factory.user())
    assert redis_client.keys("LIMITS:*"), "the limits count in the run's own Redis again"


def test_failing_open_asks_the_dead_storage_again_only_after_a_pause(app, client, monkeypatch):
    """While failing open, requests count in memory without a connection attempt each; the storage
    is asked again after 1 s, then 2 s, and so on."""
    monkeypatch.setitem(app.config, "RATELIMIT_STORAGE_URI", "redis://127.0.0.1:1/0")  # nothing listens
    limiter.init_app(app)
    limiter.enabled = True
    asked = []
    ask = limiter._hit_shared
    monkeypatch.setattr(limiter, "_hit_shared", lambda counted: asked.append(1) or ask(counted))
    emails = (f"nobody{number}@example.com" for number in range(10))
    assert [attempt_login(client, next(emails)).status_code for _ in range(3)] == [400, 400, 400]
    assert len(asked) == 1 and limiter.failing_open
    limiter._retry_at = 0.0  # the pause is over
    assert [attempt_login(client, next(emails)).status_code for _ in range(2)] == [400, 400]
    assert len(asked) == 2 and limiter._retry_seconds == 2


FAIL_OPEN_IN_DEVELOPMENT = """
from app import create_app
app = create_app()  # STAGEPASS_ENV=development: debug, as under `flask run`
app.config["WTF_CSRF_ENABLED"] = False
client = app.test_client()
for _ in range(3):
    response = client.post("/auth/login", data={"email": "nobody@example.com", "password": "wrong-password"})
    assert response.status_code == 400
"""


def test_failing_open_is_logged_once_under_flask_run(app):
    """Development has no logging set up by anyone else: the warning must still reach stderr, once."""
    import os
    import subprocess
    import sys

    dead = "redis://127.0.0.1:1/0"
    env = dict(
        os.environ,
        STAGEPASS_ENV="development",
        DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=dead,
        RATELIMIT_STORAGE_URI=dead,
        RATELIMIT_ENABLED="1",
    )
    run = subprocess.run(
        [sys.executable, "-c", FAIL_OPEN_IN_DEVELOPMENT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    warnings = [line for line in run.stderr.splitlines() if "Rate limits failing open" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], run.stderr[-2000:]


# --- client addresses behind a reverse proxy ---------------------------------------------------


@pytest.fixture
def behind_one_proxy(app, monkeypatch):
    """The app as the nginx deployment runs it: TRUSTED_PROXY_COUNT=1."""
    from app import trust_reverse_proxies

    monkeypatch.setattr(app, "wsgi_app", app.wsgi_app)
    monkeypatch.setitem(app.config, "TRUSTED_PROXY_COUNT", 1)
    trust_reverse_proxies(app)


def failed_logins_forwarded_for(client, forwarded_for):
    """Log-ins to addresses nobody has (so only the per-IP limit can refuse), each with its X-Forwarded-For."""
    token = csrf_token(client)
    return [
        client.post(
            "/auth/login",
            data={"email": f"nobody{number}@example.com", "password": "wrong-password", "csrf_token": token},
            headers={"X-Forwarded-For": value},
        ).status_code
        for number, value in enumerate(forwarded_for)
    ]


def test_per_ip_limits_follow_x_forwarded_for_behind_a_trusted_proxy(client, behind_one_proxy, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_IP"] = "2 per minute"
    # nginx appends the client it saw; what comes before is whatever the client sent.
    assert failed_logins_forwarded_for(client, ["203.0.113.7", "198.51.100.1, 203.0.113.7", "203.0.113.7"]) == [
        400,
        400,
        429,
    ]
    assert failed_logins_forwarded_for(client, ["203.0.113.8"]) == [400]


def test_x_forwarded_for_is_ignored_without_a_trusted_proxy(app, client, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_IP"] = "2 per minute"
    assert app.config["TRUSTED_PROXY_COUNT"] == 0
    assert failed_logins_forwarded_for(client, ["203.0.113.1", "203.0.113.2", "203.0.113.3"]) == [400, 400, 429]


@pytest.mark.parametrize("trusted", [True, False], ids=["behind nginx", "no proxy configured"])
def test_hsts_follows_x_forwarded_proto_only_from_a_trusted_proxy(request, app, client, monkeypatch, trusted):
    if trusted:
        request.getfixturevalue("behind_one_proxy")
    monkeypatch.setitem(app.config, "PRODUCTION", True)
    headers = client.get("/livez", headers={"X-Forwarded-Proto": "https"}).headers
    assert ("Strict-Transport-Security" in headers) is trusted
    assert "Strict-Transport-Security" not in client.get("/livez").headers


def test_request_bodies_are_limited_to_one_mebibyte_by_default(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 1024 * 1024


def test_oversized_hold_is_a_json_413_and_changes_nothing(client, factory, db_session, login):
    import sqlalchemy as sa

    from app.models import Order, Seat

    event = factory.event()
    login(factory.user())
    token = csrf_token(client, "/")
    seat_id = db_session.scalar(sa.select(Seat.id).where(Seat.event_id == event.id).order_by(Seat.id))
    body = {"seat_ids": [seat_id] * 500_000}  # at least 1.5 MB of JSON
    response = client.post(f"/api/events/{event.id}/holds", json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 413, response.get_data(as_text=True)[:500]
    assert response.get_json()["code"] == "too_large"
    assert "too large" in response.get_json()["error"] and "1 MiB" in response.get_json()["error"]
    assert db_session.scalar(sa.select(sa.func.count(Order.id))) == 0


def test_oversized_form_is_an_html_413(client, factory, app):
    app.config["MAX_CONTENT_LENGTH"] = 4096
    user = factory.user()
    token = csrf_token(client)
    response = client.post("/auth/login", data={"email": user.email, "password": "x" * 5000, "csrf_token": token})
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "too large" in page and "4 KiB" in page
