from datetime import timedelta

import sqlalchemy as sa

from app.cli import DEMO_ADMIN, DEMO_BUYER, DEMO_EVENTS
from app.models import Event, Seat, User, utcnow
from app.services import accounts, booking, catalog, events
from tests.admin_support import client_of
from tests.support import PASSWORD, csrf_token


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
    from tests.support import csrf_token

    runner.invoke(args=["seed-demo"])
    for email, password, home in (
        ("admin@example.com", "admin-pass-123", "/admin/"),
        ("buyer@example.com", "buyer-pass-123", "/"),
    ):
        response = client.post(
            "/auth/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
        )
        assert response.headers["Location"] == home, response.get_data(as_text=True)
        client.post("/auth/logout", data={"csrf_token": csrf_token(client, home)})


def test_create_admin_checks_the_password_before_promoting_an_existing_account(runner, factory, db_session):
    user = factory.user(email="someone@example.com")
    result = runner.invoke(args=["create-admin", "someone@example.com", "--password", "short"])
    assert result.exit_code != 0 and "at least 8" in result.output
    db_session.expire_all()
    assert not user.is_admin and user.check_password(PASSWORD) and not user.check_password("short")


def seed(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    return result.output


def bookable_demo_events():
    names = {spec["name"] for spec in DEMO_EVENTS}
    return [event for event in catalog.upcoming_events() if event.name in names]


def test_seed_demo_run_again_keeps_what_is_fine(runner, db_session):
    seed(runner)
    ids = db_session.scalars(sa.select(Event.id).order_by(Event.id)).all()
    output = seed(runner)
    assert output.count("Kept event") == 2 and "Created" not in output
    assert db_session.scalars(sa.select(Event.id).order_by(Event.id)).all() == ids
    assert len(bookable_demo_events()) == 2


def test_seed_demo_makes_its_printed_credentials_true_again(runner, app, db_session):
    seed(runner)
    admin_user = accounts.find_user_by_email(DEMO_ADMIN[0])
    buyer_user = accounts.find_user_by_email(DEMO_BUYER[0])
    admin_user.is_admin, buyer_user.is_admin = False, True
    admin_user.set_password("changed-password")
    buyer_user.set_password("changed-password")
    db_session.commit()

    output = seed(runner)
    for (email, _, password), home in ((DEMO_ADMIN, "/admin/"), (DEMO_BUYER, "/")):
        assert f"{email} (password: {password})" in output
        client = client_of(app)
        response = client.post(
            "/auth/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)}
        )
        assert response.headers["Location"] == home, email
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == 2


def test_seed_demo_adds_fresh_events_once_the_demo_dates_have_passed(runner, db_session):
    seed(runner)
    for event in db_session.scalars(sa.select(Event)):
        event.date = utcnow() - timedelta(days=1)
    db_session.commit()
    assert bookable_demo_events() == []

    output = seed(runner)
    assert output.count("Created event") == 2
    assert len(bookable_demo_events()) == 2
    seed(runner)
    assert db_session.scalar(sa.select(sa.func.count(Event.id))) == 4


def test_seed_demo_replaces_a_cancelled_or_deleted_demo_event(runner, db_session):
    seed(runner)
    first, second = db_session.scalars(sa.select(Event).order_by(Event.id)).all()
    booking.cancel_event(first)
    events.delete_event(second)
    output = seed(runner)
    assert output.count("Created event") == 2 and len(bookable_demo_events()) == 2


def test_seed_demo_publishes_the_draft_an_interrupted_run_left(runner, db_session):
    spec = DEMO_EVENTS[0]
    draft = events.create_event(
        name=spec["name"],
        date=utcnow() + timedelta(days=3),
        rows=spec["rows"],
        columns=2,
        categories=spec["categories"],
    )
    output = seed(runner)
    assert f"Published event {spec['name']!r}" in output
    db_session.refresh(draft)
    assert draft.status == "published"
    assert db_session.scalar(sa.select(sa.func.count(Event.id)).where(Event.name == spec["name"])) == 1
    assert len(bookable_demo_events()) == 2
