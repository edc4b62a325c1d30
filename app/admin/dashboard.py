from flask import render_template

from app.admin import bp
from app.auth.decorators import admin_required
from app.models import utcnow
from app.services import reports


@bp.route("/")
@admin_required
def dashboard():
    """The admin's home: sales at a glance, per event and in total, and the latest orders."""
    now = utcnow()
    return render_template("admin/dashboard.html", now=now, **reports.dashboard(now))
