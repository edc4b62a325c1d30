import sqlalchemy as sa

from app.models import Event, Seat, User
from tests.conftest import PASSWORD


def test_create_admin_with_password_option(runner, db_session):
    result = runner.invoke(args=["create-admin", "boss@example.com", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    user = db_session.scalar(sa.select(User).where(User.email == "boss@example.com"))
    assert user.is_admin and user.check_password("long-enough-pw")


def test_create_admin_prompts_for_password(runner, db_session):
    result = runner.invoke(args=["create-admin", "boss@example.com"], input="long-enough-pw\nlong-enough-pw\n")
    assert result.exit_code == 0, result.output
    assert db_session.scalar(sa.select(User.is_admin).where(User.email == "boss@example.com"))


def test_create_admin_promotes_existing_user(runner, factory, db_session):
    user = factory.user(email="someone@example.com")
    result = runner.invoke(args=["create-admin", "someone@example.com", "--password", "another-password"])
    assert result.exit_code == 0
    db_session.refresh(user)
    assert user.is_admin


def test_create_admin_rejects_short_password(runner, db_session):
    result = runner.invoke(args=["create-admin", "boss@example.com", "--password", "short"])
    assert result.exit_code != 0
    assert "at least 8" in result.output
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == 0


def test_seed_demo_is_safe_to_run_twice(runner, db_session):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "admin@example.com" in first.output and "password" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0, second.output
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == 2
    events = db_session.scalars(sa.select(Event)).all()
    assert len(events) >= 2 and all(event.status == "published" for event in events)
    seats = db_session.scalar(sa.select(sa.func.count(Seat.id)))
    assert seats == sum(event.rows * event.columns for event in events)


def test_demo_accounts_can_log_in(runner, client):
    from tests.conftest import csrf_token

    runner.invoke(args=["seed-demo"])
    for email, password, home in (("admin@example.com", "admin-pass-123", "/admin/"), ("buyer@example.com", "buyer-pass-123", "/")):
        response = client.post("/auth/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})
        assert response.headers["Location"] == home, response.get_data(as_text=True)
        client.post("/auth/logout", data={"csrf_token": csrf_token(client, home)})


def test_create_admin_checks_the_password_before_promoting_an_existing_account(runner, factory, db_session):
    user = factory.user(email="someone@example.com")
    result = runner.invoke(args=["create-admin", "someone@example.com", "--password", "short"])
    assert result.exit_code != 0 and "at least 8" in result.output
    db_session.expire_all()
    assert not user.is_admin and user.check_password(PASSWORD) and not user.check_password("short")

