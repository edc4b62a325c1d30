from flask import render_template

from app.admin import bp
from app.auth.decorators import admin_required
from app.services import reports


@bp.route("/")
@admin_required
def dashboard():
    """The admin's home: sales at a glance, per event and in total, and the latest orders."""
    return render_template("admin/dashboard.html", **reports.dashboard())
