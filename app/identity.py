"""Who is signed in, from the signed session alone, for the hot paths that check the account in
their own statements (a hold reads the buyer's account in the statement that locks the event)."""

from dataclasses import dataclass

from flask import session
from flask_login import current_user


@dataclass(frozen=True)
class SignedIn:
    """An account known only by its id: what services that need nothing else of it are given."""

    id: int
    is_authenticated: bool = True


def signed_in_user_id() -> int | None:
    """The account id Flask-Login keeps in the signed session, without loading the account. The
    account may have been deleted since: a caller must find it before acting for it."""
    user_id = session.get("_user_id")
    if user_id is not None:
        return int(user_id)
    return current_user.id if current_user.is_authenticated else None  # e.g. a remember-me cookie
