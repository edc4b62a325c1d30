"""Admin: the audit trail, newest first, filtered by action, actor, event and dates; CSV export."""

import sqlalchemy as sa
from flask import Response, render_template, request, stream_with_context, url_for

from app.admin import bp
from app.admin.listing import FILTER_KEYS, id_filter, page_of
from app.auth.decorators import admin_required
from app.extensions import db
from app.models import Event, utcnow
from app.services import audit
from app.services.errors import InvalidRequest

ENTRIES_PER_PAGE = 50
# The action prefixes offered in the filter; any other prefix can be typed into the URL.
ACTION_PREFIXES = ("event.", "order.", "booking.", "user.", "payment.", "checkin.")


def filters_from_request() -> tuple[audit.AuditFilters, str | None]:
    """The filters in the query string, and the error of one that could not be read (then ignored)."""
    filters = audit.AuditFilters(
        action=request.args.get("action", "")[:64],
        actor=request.args.get("actor", "")[:255],
        event_id=id_filter("event"),
    )
    error = None
    for name in ("since", "until"):
        try:
            setattr(filters, name, audit.parse_day(request.args.get(name)))
        except InvalidRequest as invalid:
            error = invalid.message
    return filters, error


@bp.route("/audit")
@admin_required
def audit_log():
    """The audit trail: who did what to which object, newest first."""
    filters, error = filters_from_request()
    page = page_of(audit.entries_query(filters), ENTRIES_PER_PAGE)
    events = db.session.scalars(
        sa.select(Event).order_by(Event.date.desc()).execution_options(include_deleted=True)
    ).all()
    return render_template(
        "admin/audit_log.html",
        page=page,
        filters=filters,
        events=events,
        prefixes=ACTION_PREFIXES,
        error=error,
        csv_url=url_for("admin.audit_csv", **{key: request.args[key] for key in FILTER_KEYS if request.args.get(key)}),
    ), 400 if error else 200


@bp.route("/audit.csv")
@admin_required
def audit_csv():
    """The filtered audit trail as a CSV download (times in UTC)."""
    filters, error = filters_from_request()
    if error:
        raise InvalidRequest(error)
    filename = f"stagepass-audit-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(audit.entries_csv(filters)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
