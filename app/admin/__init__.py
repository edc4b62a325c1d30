from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import audit_log, bookings, cancellations, dashboard, emails, events, payments, users  # noqa: E402,F401
