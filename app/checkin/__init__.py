"""The door: check-in pages for staff and admins, and the check-in API their phones call."""

from flask import Blueprint

bp = Blueprint("checkin", __name__)

from app.checkin import api, routes  # noqa: E402,F401
