"""Admin: every order's payment (amount, method, provider reference, status, paid-at)."""

import sqlalchemy as sa
from flask import render_template

from app.admin import bp
from app.admin.listing import id_filter, page_of, status_filter
from app.auth.decorators import admin_required
from app.extensions import db
from app.models import Event, OrderStatus, PaymentStatus
from app.services import reports

PAYMENTS_PER_PAGE = 50


@bp.route("/payments")
@admin_required
def payments():
    """Payments of all orders, filtered by event and payment status."""
    status = status_filter(PaymentStatus.ALL)
    event_id = id_filter("event")
    query = reports.orders_query(event_id=event_id, payment_status=status or None)
    page = page_of(query, PAYMENTS_PER_PAGE)
    events = db.session.scalars(sa.select(Event).order_by(Event.date.desc())).all()
    return render_template(
        "admin/payments.html",
        page=page,
        status=status,
        statuses=PaymentStatus.ALL,
        event_id=event_id,
        events=events,
        live=OrderStatus.LIVE,
    )
