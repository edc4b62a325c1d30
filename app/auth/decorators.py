"""Access guards for views."""

from functools import wraps

from flask import abort, redirect, url_for
from flask_login import current_user

from app.extensions import login_manager


def admin_required(view):
    """Admins only: guests are sent to log in, other users get 403."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.is_admin:
            abort(403, "This page is for administrators.")
        return view(*args, **kwargs)

    return wrapped


def staff_required(view):
    """Door staff and admins only (checking tickets in): guests are sent to log in, others get 403."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if not current_user.can_check_in:
            abort(403, "This page is for door staff.")
        return view(*args, **kwargs)

    return wrapped


def redirect_admins(view):
    """Buyer pages send admins to their dashboard (the seed's RedirectIfAdmin)."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_user.is_authenticated and current_user.is_admin:
            return redirect(url_for("admin.dashboard"))
        return view(*args, **kwargs)

    return wrapped
