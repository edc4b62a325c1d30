import pytest
import sqlalchemy as sa

from app.models import User
from tests.support import PASSWORD, csrf_token


def register(client, **overrides):
    data = {
        "name": "Ada",
        "email": "ada@example.com",
        "password": "s3cret-pass",
        "password2": "s3cret-pass",
        "csrf_token": csrf_token(client, "/auth/register"),
    }
    data.update(overrides)
    return client.post("/auth/register", data=data)


def test_register_creates_user_and_logs_in(client, db_session):
    response = register(client)
    assert response.status_code == 302
    user = db_session.scalar(sa.select(User).where(User.email == "ada@example.com"))
    assert user is not None
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert "Log out" in page and "Ada" in page


def test_password_is_hashed(client, db_session):
    register(client)
    user = db_session.scalars(sa.select(User)).one()
    assert "s3cret-pass" not in user.password_hash
    assert user.check_password("s3cret-pass")


def test_register_duplicate_email_is_refused(client, factory):
    factory.user(email="ada@example.com")
    response = register(client, email="ADA@example.com ")
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"email": "not-an-email"}, "Invalid email"),
        ({"password": "short", "password2": "short"}, "at least 8"),
        ({"password2": "different-pass"}, "Passwords must match"),
        ({"name": ""}, "This field is required"),
    ],
)
def test_register_bad_input_shows_errors_and_saves_nothing(client, db_session, overrides, message):
    response = register(client, **overrides)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_register_without_csrf_token_is_refused(client, db_session):
    response = client.post(
        "/auth/register",
        data={"name": "Ada", "email": "ada@example.com", "password": "s3cret-pass", "password2": "s3cret-pass"},
    )
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_login_and_logout(client, factory):
    user = factory.user()
    response = client.post(
        "/auth/login", data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})
    assert response.status_code == 302
    assert "Log in" in client.get("/").get_data(as_text=True)


def test_login_wrong_password(client, factory):
    user = factory.user()
    response = client.post(
        "/auth/login", data={"email": user.email, "password": "wrong-password", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 400
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_login_unknown_email_says_the_same(client):
    response = client.post(
        "/auth/login", data={"email": "nobody@example.com", "password": "whatever1", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 400
    assert "Wrong email or password" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, factory):
    user = factory.user()
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400


def test_remember_me_sets_cookie(client, factory):
    user = factory.user()
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": PASSWORD, "remember_me": "y", "csrf_token": csrf_token(client)},
    )
    assert "remember_token=" in " ".join(response.headers.getlist("Set-Cookie"))


@pytest.mark.parametrize(
    "next_url, expected",
    [
        ("/auth/register", "/auth/register"),
        ("https://evil.example.com/", "/"),
        ("//evil.example.com/", "/"),
        ("/\\evil.example.com", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_login_next_redirect_stays_on_site(client, factory, next_url, expected):
    user = factory.user()
    response = client.post(
        "/auth/login",
        data={"email": user.email, "password": PASSWORD, "next": next_url, "csrf_token": csrf_token(client)},
    )
    assert response.headers["Location"] == expected


def test_logout_requires_post(client, factory, login):
    login(factory.user())
    assert client.get("/auth/logout").status_code == 405


def test_admin_guard_sends_guests_to_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login?next=")


def test_admin_guard_forbids_buyers(client, factory, login):
    login(factory.user())
    assert client.get("/admin/").status_code == 403


def test_admin_reaches_dashboard(client, factory, login):
    login(factory.admin())
    assert client.get("/admin/").status_code == 200


def test_admin_login_lands_on_dashboard(client, factory):
    admin = factory.admin()
    response = client.post(
        "/auth/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.headers["Location"] == "/admin/"


def test_admin_opening_buyer_pages_is_redirected(client, factory, login):
    login(factory.admin())
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/"


def test_navigation_differs_by_role(client, factory, login):
    guest_page = client.get("/").get_data(as_text=True)
    assert "Sign up" in guest_page and "Log out" not in guest_page
    login(factory.user())
    buyer_page = client.get("/").get_data(as_text=True)
    assert "Log out" in buyer_page and "Dashboard" not in buyer_page


def test_production_refuses_to_start_without_secret_key(monkeypatch):
    from app import create_app
    from config import ProductionConfig

    monkeypatch.setattr(ProductionConfig, "SECRET_KEY", None)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(ProductionConfig)
