"""Headers, cookies, redirects, inline code and rate limits."""
import re
from pathlib import Path

import pytest

from app.extensions import limiter
from tests.conftest import PASSWORD, csrf_token

ROOT = Path(__file__).resolve().parents[1]


def test_security_headers_on_pages_json_and_errors(client, factory):
    event = factory.event()
    for path in ("/", f"/api/events/{event.id}/seats", "/no-such-page", "/auth/login"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]+)", policy).group(1)
        assert script_src.strip() == "'self'", policy
        assert "unsafe-eval" not in policy and "frame-ancestors 'none'" in policy
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_no_inline_scripts_or_handlers():
    offenders = []
    for path in list((ROOT / "templates").rglob("*.html")) + list((ROOT / "static" / "js").rglob("*.js")):
        text = path.read_text()
        if path.suffix == ".html":
            for script in re.findall(r"<script\b[^>]*>", text):
                if "src=" not in script:
                    offenders.append(f"{path}: inline {script}")
            for handler in re.findall(r"\son[a-z]+\s*=", text):
                offenders.append(f"{path}: handler {handler.strip()}")
        if "eval(" in text or "new Function" in text:
            offenders.append(f"{path}: eval")
    assert offenders == []


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
    ["//evil.example", "/%2F%2Fevil.example", "/\\evil.example", "\\\\evil.example", "http:/evil.example",
     "https://evil.example", "/\tevil", " //evil.example", "javascript:alert(1)", "data:text/html,hi"],
)
def test_hostile_next_urls_are_refused(client, factory, target):
    user = factory.user()
    response = client.post(
        "/auth/login", data={"email": user.email, "password": PASSWORD, "next": target, "csrf_token": csrf_token(client)}
    )
    location = response.headers["Location"]
    assert location in ("/", "/%2F%2Fevil.example"), location


# --- rate limits -----------------------------------------------------------------------------


@pytest.fixture
def limits_on(app, redis_client):
    limiter.enabled = True
    limiter.reset()
    yield app.config
    limiter.reset()
    limiter.enabled = False


def test_login_is_limited_per_account_with_retry_after(client, factory, limits_on):
    limits_on["RATELIMIT_LOGIN_PER_ACCOUNT"] = "2 per minute"
    user = factory.user()
    token = csrf_token(client)
    statuses = [
        client.post("/auth/login", data={"email": user.email, "password": "wrong-password", "csrf_token": token}).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many attempts" in response.get_data(as_text=True)
    other = factory.user()
    assert client.post("/auth/login", data={"email": other.email, "password": PASSWORD, "csrf_token": token}).status_code == 302


def test_hold_is_limited_per_user_as_json(client, factory, db_session, login, limits_on):
    import sqlalchemy as sa

    from app.models import Seat

    limits_on["RATELIMIT_HOLD_PER_USER"] = "2 per minute"
    event = factory.event()
    login(factory.user())
    token = csrf_token(client, "/")
    seat_ids = db_session.scalars(sa.select(Seat.id).where(Seat.event_id == event.id)).all()
    statuses = [
        client.post(f"/api/events/{event.id}/holds", json={"seat_ids": [seat_id]}, headers={"X-CSRFToken": token}).status_code
        for seat_id in seat_ids[:3]
    ]
    assert statuses[2] == 429
    body = client.post(f"/api/events/{event.id}/holds", json={"seat_ids": [seat_ids[5]]}, headers={"X-CSRFToken": token})
    assert body.get_json()["code"] == "rate_limited" and "Retry-After" in body.headers


def test_registration_is_limited_per_ip(client, limits_on):
    limits_on["RATELIMIT_REGISTER_PER_IP"] = "1 per hour"
    token = csrf_token(client, "/auth/register")
    data = {"name": "A", "password": "long-password", "password2": "long-password", "csrf_token": token}
    assert client.post("/auth/register", data={**data, "email": "a1@example.com"}).status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    assert client.post("/auth/register", data={**data, "email": "a2@example.com", "csrf_token": csrf_token(client, "/auth/register")}).status_code == 429


def test_limits_fail_open_when_redis_is_down(app, client, factory, runner, limits_on, monkeypatch):
    from limits.storage import RedisStorage

    limits_on["RATELIMIT_LOGIN_PER_ACCOUNT"] = "1 per minute"
    dead = RedisStorage("redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2)
    monkeypatch.setattr(limiter, "_storage", dead)
    monkeypatch.setattr(limiter, "_limiter", type(limiter.limiter)(dead))
    user = factory.user()
    token = csrf_token(client)
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302  # selling goes on
    result = runner.invoke(args=["health"])
    assert "rate limits" in result.output and "failing open" in result.output


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
