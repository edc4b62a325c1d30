"""Admin user management: search, create, edit (unique email, no self-demotion), delete."""

import html

import pytest
import sqlalchemy as sa

from app.models import User
from app.services import accounts
from tests.admin_support import paid_order, post_form, seat_ids
from tests.support import PASSWORD, csrf_token


def text(response):
    return html.unescape(response.get_data(as_text=True))


def user_form(client, **overrides):
    data = {"name": "Grace", "email": "grace@example.com", "password": "", "csrf_token": csrf_token(client, "/admin/")}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_list_and_search_users(client, admin, factory):
    factory.user(name="Ada Lovelace", email="ada@example.com")
    factory.user(name="Grace Hopper", email="grace@navy.example")
    page = text(client.get("/admin/users"))
    assert "ada@example.com" in page and "grace@navy.example" in page
    found = text(client.get("/admin/users?q=NAVY"))
    assert "grace@navy.example" in found and "ada@example.com" not in found
    found = text(client.get("/admin/users?q=lovelace"))
    assert "ada@example.com" in found and "grace@navy.example" not in found


def test_create_a_user(client, admin, db_session):
    response = client.post("/admin/users/new", data=user_form(client, password="long-enough", is_admin="y"))
    assert response.status_code == 302
    created = accounts.find_user_by_email("grace@example.com")
    assert created.is_admin and created.check_password("long-enough")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"password": ""}, "This field is required."),
        ({"password": "short"}, "at least 8 characters"),
        ({"email": "not-an-email", "password": "long-enough"}, "Invalid email address."),
        ({"name": "", "password": "long-enough"}, "This field is required."),
        ({"email": "ADMIN-TAKEN@example.com", "password": "long-enough"}, "Another account already uses this email."),
    ],
)
def test_create_user_bad_input(client, admin, factory, db_session, overrides, message):
    factory.user(email="admin-taken@example.com")
    before = db_session.scalar(sa.select(sa.func.count(User.id)))
    response = client.post("/admin/users/new", data=user_form(client, **overrides))
    assert response.status_code == 400
    assert message in text(response)
    assert db_session.scalar(sa.select(sa.func.count(User.id))) == before


def test_edit_name_email_password_and_admin_flag(client, admin, factory, db_session):
    user = factory.user()
    response = client.post(
        f"/admin/users/{user.id}/edit",
        data=user_form(client, name="New Name", email="NEW@example.com", password="new-password", is_admin="y"),
    )
    assert response.status_code == 302
    db_session.expire_all()
    assert (user.name, user.email, user.is_admin) == ("New Name", "new@example.com", True)
    assert user.check_password("new-password")


def test_blank_password_keeps_the_old_one(client, admin, factory, db_session):
    user = factory.user()
    client.post(f"/admin/users/{user.id}/edit", data=user_form(client, email=user.email))
    db_session.expire_all()
    assert user.check_password(PASSWORD)


def test_edit_to_a_taken_email_is_refused(client, admin, factory, db_session):
    user = factory.user(email="one@example.com")
    factory.user(email="two@example.com")
    response = client.post(f"/admin/users/{user.id}/edit", data=user_form(client, email="Two@example.com"))
    assert response.status_code == 400
    assert "Another account already uses this email." in text(response)
    db_session.expire_all()
    assert user.email == "one@example.com"


def test_an_admin_cannot_remove_their_own_admin_flag(client, admin, db_session):
    response = client.post(f"/admin/users/{admin.id}/edit", data=user_form(client, email=admin.email, name="Me"))
    assert response.status_code == 400
    assert "You cannot remove your own admin rights" in text(response)
    db_session.expire_all()
    assert admin.is_admin and admin.name != "Me"


def test_an_admin_can_demote_another_admin(client, admin, factory, db_session):
    other = factory.admin()
    client.post(f"/admin/users/{other.id}/edit", data=user_form(client, email=other.email))
    db_session.expire_all()
    assert not other.is_admin


def test_update_user_service_rules(factory, db_session):
    me, other = factory.admin(), factory.user(email="other@example.com")
    with pytest.raises(accounts.UserChangeRefused):
        accounts.update_user(me, acting_admin=me, name="Me", email=me.email, is_admin=False)
    with pytest.raises(accounts.EmailTaken):
        accounts.update_user(me, acting_admin=me, name="Me", email="other@example.com", is_admin=True)
    with pytest.raises(accounts.InvalidRequest):
        accounts.update_user(other, acting_admin=me, name="", email=other.email, is_admin=False)


def test_delete_a_user_without_orders_after_confirmation(client, admin, factory, db_session):
    user_id = factory.user().id
    assert "Delete the account" in text(client.get(f"/admin/users/{user_id}/delete"))
    assert db_session.get(User, user_id) is not None
    response = post_form(client, f"/admin/users/{user_id}/delete")
    assert response.headers["Location"].endswith("/admin/users")
    db_session.expire_all()
    assert db_session.scalar(sa.select(User).where(User.id == user_id)) is None


def test_a_user_with_orders_is_kept(client, admin, factory, db_session):
    buyer = factory.user()
    event = factory.event()
    paid_order(buyer, event, seat_ids(event, 1))
    response = post_form(client, f"/admin/users/{buyer.id}/delete")
    assert "accounts with bookings are kept" in text(client.get(response.headers["Location"]))
    assert db_session.scalar(sa.select(User).where(User.id == buyer.id)) is not None


def test_an_admin_cannot_delete_themselves(client, admin, db_session):
    response = post_form(client, f"/admin/users/{admin.id}/delete")
    assert "cannot delete your own account" in text(client.get(response.headers["Location"]))
    assert db_session.scalar(sa.select(User).where(User.id == admin.id)) is not None


def test_unknown_user_is_404(client, admin):
    assert client.get("/admin/users/9999/edit").status_code == 404
