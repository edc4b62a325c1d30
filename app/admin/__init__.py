from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import bookings, dashboard, emails, events, payments, users, waitlist  # noqa: E402,F401
