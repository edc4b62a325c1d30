"""The admin audit page: newest first, filters, pages, CSV export; admins only."""

import csv
import html
import io
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditEntry, utcnow
from app.services import audit, maintenance
from tests.admin_support import client_of


def text(response):
    return html.unescape(response.get_data(as_text=True))


def trail(factory):
    """A small trail: an admin's event and order lines over three days, and a job's line (the
    factory's own event.created and event.published lines are newer and left out of the checks)."""
    admin = factory.admin(email="boss@example.com")
    event, other = factory.event(name="Gala"), factory.event(name="Recital")
    day = datetime(2026, 11, 3, 12, 0)
    audit.record("event.updated", actor=admin, subject=event, now=day)
    audit.record("order.refunded", actor=admin, subject=event, data={"amount": "25.00"}, now=day + timedelta(days=1))
    audit.record("user.admin_granted", actor=admin, subject=admin, now=day + timedelta(days=2))
    audit.record(
        "order.cancelled", actor_label="job:cancel-orders", subject=other, now=day + timedelta(days=2, hours=1)
    )
    db.session.commit()
    return admin, event, other


def actions(page):
    return [
        line
        for line in ("event.updated", "order.refunded", "user.admin_granted", "order.cancelled")
        if f"<code>{line}</code>" in page
    ]


def shown_order(page):
    found = [(page.index(f"<code>{line}</code>"), line) for line in actions(page)]
    return [line for _, line in sorted(found)]


def test_newest_first_and_linked_from_the_admin_nav(app, factory):
    admin, _, _ = trail(factory)
    client = client_of(app, admin)
    assert 'href="/admin/audit"' in text(client.get("/admin/"))
    page = text(client.get("/admin/audit"))
    assert shown_order(page) == ["order.cancelled", "user.admin_granted", "order.refunded", "event.updated"]
    assert "job:cancel-orders" in page and "boss@example.com" in page


def test_filters(app, factory):
    admin, event, other = trail(factory)
    client = client_of(app, admin)
    assert shown_order(text(client.get("/admin/audit?action=order."))) == ["order.cancelled", "order.refunded"]
    assert shown_order(text(client.get("/admin/audit?action=ORDER.ref"))) == ["order.refunded"]
    assert shown_order(text(client.get("/admin/audit?actor=job:"))) == ["order.cancelled"]
    assert shown_order(text(client.get(f"/admin/audit?event={other.id}"))) == ["order.cancelled"]
    between = text(client.get("/admin/audit?since=2026-11-04&until=2026-11-04"))
    assert shown_order(between) == ["order.refunded"]
    assert shown_order(text(client.get("/admin/audit?action=%25"))) == []  # LIKE wildcards are literal


def test_a_bad_date_is_said_and_ignored(app, factory):
    admin, _, _ = trail(factory)
    client = client_of(app, admin)
    response = client.get("/admin/audit?since=yesterday")
    assert response.status_code == 400
    assert "is not a date: use YYYY-MM-DD." in text(response)
    assert client.get("/admin/audit.csv?until=31/12/2026").status_code == 400


def test_pages_keep_the_filters(app, factory):
    admin = factory.admin()
    for number in range(55):
        audit.record("order.refunded", actor=admin, data={"n": number})
    audit.record("event.published", actor=admin)
    db.session.commit()
    client = client_of(app, admin)
    first = text(client.get("/admin/audit?action=order."))
    assert (
        "Page 1 of 2" in first
        and "/admin/audit?action=order.&amp;page=2" in first.replace("&", "&amp;")
        or ("action=order.&page=2" in first)
    )
    second = text(client.get("/admin/audit?action=order.&page=2"))
    assert second.count("<code>order.refunded</code>") == 5 and "<code>event.published</code>" not in second


def test_csv_export_of_the_filtered_lines_in_utc(app, factory):
    admin, event, _ = trail(factory)
    audit.record("order.refunded", actor_label="=cmd|' /C calc'!A0", data={"x": 1}, now=datetime(2026, 11, 4, 9, 0))
    db.session.commit()
    client = client_of(app, admin)
    response = client.get("/admin/audit.csv?action=order.refunded")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="stagepass-audit-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["created_at_utc"] for row in rows] == ["2026-11-04 12:00:00", "2026-11-04 09:00:00"]
    assert rows[0]["actor"] == "boss@example.com" and rows[0]["event_id"] == str(event.id)
    assert rows[0]["data"] == '{"amount": "25.00"}'
    assert rows[1]["actor"].startswith("'=")  # no formula for a spreadsheet to run


def test_the_csv_export_streams_many_lines(app, factory):
    admin = factory.admin()
    for number in range(audit.CSV_BATCH + 20):
        audit.record("order.refunded", actor=admin, data={"n": number})
    db.session.commit()
    response = client_of(app, admin).get("/admin/audit.csv")
    assert len(response.get_data(as_text=True).splitlines()) == audit.CSV_BATCH + 21


def test_admins_only(app, factory):
    trail(factory)
    buyer = factory.user()
    assert client_of(app, buyer).get("/admin/audit").status_code == 403
    assert client_of(app, buyer).get("/admin/audit.csv").status_code == 403
    guest = client_of(app).get("/admin/audit.csv")
    assert guest.status_code == 302 and "/auth/login" in guest.location


def test_db_cleanup_purges_old_rows_and_keeps_the_trail(app, factory):
    """db-cleanup leaves audit_log alone: the trail outlives the events it names."""
    admin = factory.admin()
    event = factory.event(status="draft")
    event_id = event.id
    from app.services import events

    events.delete_event(event, actor=admin)
    lines = db.session.scalar(sa.select(sa.func.count(AuditEntry.id)))
    report = maintenance.db_cleanup(1, now=utcnow() + timedelta(days=3))
    assert report.deleted["events"] == 1
    assert db.session.scalar(sa.select(sa.func.count(AuditEntry.id))) == lines
    assert (
        db.session.scalars(sa.select(AuditEntry.event_id).where(AuditEntry.action == "event.deleted")).one() == event_id
    )
