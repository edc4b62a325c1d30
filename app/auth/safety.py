"""Redirect targets that stay on this site."""

from urllib.parse import urlsplit, urlunsplit

from flask import flash, redirect, request, url_for

from app.extensions import login_manager


def safe_next_url(target: str | None) -> str | None:
    """The target if it is a path on this site, else None (refuses //host, schemes, backslashes)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(char) < 32 for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def page_to_return_to() -> str | None:
    """A page a guest can GET after logging in: this one, or for a POST-only URL the page it came from."""
    if request.url_rule is not None and "GET" in request.url_rule.methods:
        return request.full_path.rstrip("?")
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc != request.host:
        return None
    return safe_next_url(urlunsplit(("", "", referrer.path, referrer.query, "")))


def send_guest_to_log_in():
    """Flask-Login's unauthorized handler: to the log-in page, then back to a page worth a GET."""
    flash(str(login_manager.login_message), login_manager.login_message_category)
    return redirect(url_for(login_manager.login_view, next=page_to_return_to()))
