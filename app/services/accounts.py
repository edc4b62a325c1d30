"""Accounts: creating users and checking credentials."""

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Order, User
from app.services import audit
from app.services.errors import DomainError, InvalidRequest
from app.services.querying import any_contains
from app.services.transactions import run_unit_of_work


class EmailTaken(DomainError):
    """An account with this email already exists."""

    code = "email_taken"


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.scalar(sa.select(User).where(User.email == normalize_email(email)))


def checked_email(email: str) -> str:
    email = normalize_email(email)
    if not email or "@" not in email:
        raise InvalidRequest("A valid email address is required.")
    return email


def check_password(password: str) -> None:
    if not password or len(password) < 8:
        raise InvalidRequest("The password must be at least 8 characters.")


def _save_user(change) -> User:
    """Run `change()` (which returns the user it changed) as a unit of work and commit it."""
    try:
        return run_unit_of_work(change)
    except IntegrityError:
        # The unique index decides races between two accounts taking the same address.
        raise EmailTaken() from None


def create_user(
    email: str,
    name: str,
    password: str,
    is_admin: bool = False,
    *,
    actor=None,
    actor_label: str | None = None,
    is_staff: bool = False,
) -> User:
    """Create and commit a user; raises EmailTaken if the email is in use."""
    email = checked_email(email)
    check_password(password)
    user = User(email=email, name=(name or email.split("@")[0]).strip(), is_admin=is_admin, is_staff=is_staff)
    user.set_password(password)

    def change():
        db.session.add(user)
        if actor is not None or actor_label is not None:  # an admin or a command, not a buyer signing up
            data = {"email": email, "is_admin": is_admin}
            _record_user_change("user.created", user, actor, actor_label, data, was_admin=False)
        return user

    return _save_user(change)


def _record_user_change(
    action: str, user: User, actor, actor_label: str | None, data: dict, *, was_admin: bool | None
) -> None:
    """The audit lines of a change to an account: the change, and a grant or revoke of admin rights."""
    # Flushing a new account for its id may meet the unique email: _save_user turns that into EmailTaken.
    audit.record(action, actor=actor, actor_label=actor_label, subject=user, data=data)
    if was_admin is not None and was_admin != user.is_admin:
        permission = "user.admin_granted" if user.is_admin else "user.admin_revoked"
        audit.record(permission, actor=actor, actor_label=actor_label, subject=user, data={"email": user.email})


def set_up_user(email: str, password: str, *, is_admin: bool, name: str | None = None) -> tuple[User, bool]:
    """Create this account, or give the existing one this password and admin flag; True if created."""
    check_password(password)  # first: a bad password must change nothing, also on an existing account
    user = find_user_by_email(email)
    if user is None:
        return create_user(email, name, password, is_admin=is_admin, actor_label=SET_UP_LABEL), True
    password_hash = _hash_of(password)

    def change():
        changes, was_admin = {"password": "changed"}, user.is_admin
        if was_admin != is_admin:
            changes["is_admin"] = [was_admin, is_admin]
        user.is_admin = is_admin
        user.password_hash = password_hash
        if name and name.strip() and name.strip() != user.name:
            changes["name"] = [user.name, name.strip()]
            user.name = name.strip()
        _record_user_change("user.updated", user, None, SET_UP_LABEL, changes, was_admin=was_admin)
        return user

    return _save_user(change), False


def _hash_of(password: str) -> str:
    """The password's hash, computed before a unit of work (scrypt takes a tenth of a second)."""
    probe = User()
    probe.set_password(password)
    return probe.password_hash


# Accounts set up from the command line (flask create-admin, seed-demo) have no acting user.
SET_UP_LABEL = "cli:set-up-user"


def authenticate(email: str, password: str) -> User | None:
    """The user with these credentials, or None."""
    user = find_user_by_email(email)
    if user is None or not user.check_password(password):
        return None
    return user


# --- administration --------------------------------------------------------------------------


class UserChangeRefused(DomainError):
    """That change to this account is not allowed."""

    code = "user_change_refused"


def search_users(query: str | None = None):
    """A select of users, by name; with a query, those whose name or email contains it."""
    statement = sa.select(User).order_by(User.name, User.id)
    text = (query or "").strip()
    if text:
        statement = statement.where(any_contains((User.name, User.email), text))
    return statement


def update_user(
    user: User,
    *,
    acting_admin: User,
    name: str,
    email: str,
    is_admin: bool,
    is_staff: bool | None = None,
    password: str | None = None,
) -> User:
    """An admin edits an account (committed). Admins cannot take their own admin rights away."""
    email = checked_email(email)
    if not (name or "").strip():
        raise InvalidRequest("A name is required.")
    if user.id == acting_admin.id and user.is_admin and not is_admin:
        raise UserChangeRefused("You cannot remove your own admin rights; ask another admin.")
    if password:
        check_password(password)
    owner = find_user_by_email(email)
    if owner is not None and owner.id != user.id:
        raise EmailTaken()
    password_hash = _hash_of(password) if password else None

    def change():
        was_admin = user.is_admin
        changes = {
            field: [old, new]
            for field, old, new in (
                ("name", user.name, name.strip()),
                ("email", user.email, email),
                ("is_admin", user.is_admin, is_admin),
            )
            if old != new
        }
        if password_hash:
            changes["password"] = "changed"
        user.name = name.strip()
        user.email = email
        user.is_admin = is_admin
        if is_staff is not None:
            user.is_staff = is_staff
        if password_hash:
            user.password_hash = password_hash
        if changes:
            _record_user_change("user.updated", user, acting_admin, None, changes, was_admin=was_admin)
        return user

    return _save_user(change)


def delete_user(user: User, *, acting_admin: User) -> None:
    """Delete an account that never ordered anything (committed); others keep their history."""
    if user.id == acting_admin.id:
        raise UserChangeRefused("You cannot delete your own account.")
    orders = db.session.scalar(sa.select(sa.func.count(Order.id)).where(Order.user_id == user.id))
    if orders:
        raise UserChangeRefused(
            f"{user.email} has {orders} order{'s' if orders != 1 else ''}: accounts with bookings are kept "
            "so their tickets, payments and refunds stay on record."
        )
    user_id, email = user.id, user.email
    gone = {"email": user.email, "name": user.name, "was_admin": user.is_admin}

    def work():
        # Conditional, so an order placed since the check keeps the account (on SQLite too).
        result = db.session.execute(
            sa.delete(User).where(User.id == user_id, ~sa.exists().where(Order.user_id == User.id))
        )
        if result.rowcount != 1:
            raise UserChangeRefused(f"{email} has just placed an order, so the account is kept.")
        audit.record("user.deleted", actor=acting_admin, subject=user, data=gone)

    run_unit_of_work(work)
