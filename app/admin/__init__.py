from flask import Blueprint

bp = Blueprint("admin", __name__)

from app.admin import (  # noqa: E402,F401
    audit_log,
    bookings,
    cancellations,
    dashboard,
    emails,
    events,
    payments,
    users,
    waitlist,
)
