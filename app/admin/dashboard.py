from flask import render_template

from app.admin import bp
from app.auth.decorators import admin_required
from app.models import utcnow
from app.services import checkin, reports


@bp.route("/")
@admin_required
def dashboard():
    """The admin's home: sales at a glance, per event and in total, and the latest orders."""
    now = utcnow()
    report = reports.dashboard(now)
    checkins = checkin.counts_by_event([row.event.id for row in report["sales"]])
    return render_template("admin/dashboard.html", now=now, checkins=checkins, **report)
