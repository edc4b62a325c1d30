"""Admin sales: the dashboard, booking and payment lists, CSV export, cancellations with refunds."""

import contextlib
import csv
import html
import io
from datetime import timedelta
from decimal import Decimal

import sqlalchemy as sa
from rq import SimpleWorker

from app import jobs
from app.models import Order, Payment, Seat, utcnow
from app.services import booking, events, payments, reports
from app.services.events import CategorySpec
from tests.admin_support import paid_order, post_form, seat_ids
from tests.invariants import assert_invariants


def text(response):
    return html.unescape(response.get_data(as_text=True))


def two_category_event(factory, **kwargs):
    return factory.event(
        rows=3,
        columns=4,
        categories=[
            CategorySpec("Premium", Decimal("80.00"), "#c2410c", 1, 1),
            CategorySpec("Standard", Decimal("40.00")),
        ],
        **kwargs,
    )


# --- reports -----------------------------------------------------------------------------------


def test_sales_figures_per_event_and_in_total(factory, db_session):
    first, second = two_category_event(factory), factory.event(rows=2, columns=2)
    ids = seat_ids(first)
    paid_order(factory.user(), first, ids[:2])  # 2 x Premium = 160
    booking.hold(factory.user(), first, [ids[5]])  # Standard, held
    booking.hold(factory.user(), first, [ids[6]], now=utcnow() - timedelta(minutes=10))  # expired: free
    refunded = paid_order(factory.user(), second, seat_ids(second, 1))
    booking.cancel_order(refunded)
    paid_order(factory.user(), second, seat_ids(second)[1:3])  # 2 x 25

    first_sales, second_sales = reports.sales_by_event([first, second])
    assert (first_sales.seats, first_sales.sold, first_sales.held, first_sales.free) == (12, 2, 1, 9)
    assert first_sales.revenue == Decimal("160.00")
    assert (second_sales.sold, second_sales.held, second_sales.free) == (2, 0, 2)
    assert (second_sales.revenue, second_sales.refunded) == (Decimal("50.00"), Decimal("25.00"))
    total = reports.totals([first_sales, second_sales])
    assert (total.seats, total.sold, total.held, total.free, total.revenue) == (16, 4, 1, 11, Decimal("210.00"))


def test_a_partly_refunded_order_counts_what_was_kept(factory, db_session):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 3))
    booking.cancel_booking(order.bookings[0])
    (sales,) = reports.sales_by_event([event])
    assert (sales.sold, sales.revenue, sales.refunded) == (2, Decimal("50.00"), Decimal("25.00"))


def test_reports_take_a_fixed_number_of_queries(factory, db_session, app):
    from app.extensions import db

    made = [factory.event(rows=2, columns=2) for _ in range(3)]
    for event in made:
        paid_order(factory.user(), event, seat_ids(event, 1))

    def queries_for(events_):
        statements = []
        listener = lambda *args, **kwargs: statements.append(1)  # noqa: E731
        sa.event.listen(db.engine, "before_cursor_execute", listener)
        try:
            reports.sales_by_event(events_)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", listener)
        return len(statements)

    for event in made:
        db.session.refresh(event)
    assert queries_for(made[:1]) == queries_for(made) == 2


def test_dashboard_shows_per_event_sales_totals_and_latest_orders(client, admin, factory):
    event = two_category_event(factory, name="Jazz Night")
    order = paid_order(factory.user(email="fan@example.com"), event, seat_ids(event, 1))
    page = text(client.get("/admin/"))
    assert "Jazz Night" in page
    assert "€80.00" in page
    assert order.reference in page and "fan@example.com" in page
    assert "All events" in page


def test_dashboard_with_no_events(client, admin):
    page = text(client.get("/admin/"))
    assert "No events yet" in page and "No orders yet" in page


# --- bookings ----------------------------------------------------------------------------------


def test_bookings_list_per_event_and_by_status(client, admin, factory):
    event, other = two_category_event(factory, name="Jazz Night"), factory.event(name="Hamlet")
    paid = paid_order(factory.user(), event, seat_ids(event, 1))
    held = booking.hold(factory.user(), event, seat_ids(event)[4:5])
    elsewhere = booking.hold(factory.user(), other, seat_ids(other, 1))

    overall = text(client.get("/admin/bookings"))
    assert all(o.reference in overall for o in (paid, held, elsewhere))
    per_event = text(client.get(f"/admin/events/{event.id}/bookings"))
    assert paid.reference in per_event and held.reference in per_event and elsewhere.reference not in per_event
    confirmed = text(client.get(f"/admin/events/{event.id}/bookings?status=confirmed"))
    assert paid.reference in confirmed and held.reference not in confirmed
    assert client.get("/admin/events/999/bookings").status_code == 404


def test_bookings_of_a_replaced_seat_map_stay_listed(client, admin, factory, db_session):
    event = factory.event(rows=2, columns=2)
    old = booking.hold(factory.user(), event, seat_ids(event, 1), now=utcnow() - timedelta(minutes=10))
    details = events.EventDetails(event.name, event.date, 3, 3, [CategorySpec("Standard", Decimal("25.00"))])
    events.update_event(event, details)
    page = text(client.get(f"/admin/events/{event.id}/bookings"))
    assert old.reference in page and "A1" in page


def test_csv_export_lists_every_booking_of_the_event(client, admin, factory):
    event = two_category_event(factory)
    other = factory.event()
    buyer = factory.user(email="ada@example.com")
    paid = paid_order(buyer, event, seat_ids(event)[:1] + seat_ids(event)[4:5])  # A1 Premium, B1 Standard
    held = booking.hold(factory.user(email="=cmd@example.com"), event, seat_ids(event)[5:6])
    booking.hold(factory.user(), other, seat_ids(other, 1))

    response = client.get(f"/admin/events/{event.id}/bookings.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert list(rows[0].keys()) == [
        "reference",
        "buyer_email",
        "seat",
        "category",
        "amount",
        "currency",
        "status",
        "payment_status",
        "payment_method",
        "created_at",
        "paid_at",
        "ticket_code",
        "checked_in_at",
        "checked_in_door",
    ]
    assert len(rows) == 3
    first, second, third = rows
    assert (first["reference"], first["buyer_email"], first["seat"], first["category"], first["amount"]) == (
        paid.reference,
        "ada@example.com",
        "A1",
        "Premium",
        "80.00",
    )
    assert first["currency"] == "EUR"
    assert (first["status"], first["payment_status"], first["payment_method"]) == ("confirmed", "paid", "card")
    assert first["paid_at"] and first["created_at"]
    assert (second["seat"], second["category"], second["amount"]) == ("B1", "Standard", "40.00")
    assert (third["reference"], third["status"], third["payment_status"], third["paid_at"]) == (
        held.reference,
        "pending",
        "pending",
        "",
    )
    assert third["buyer_email"] == "'=cmd@example.com"  # a spreadsheet must not run it as a formula


def test_csv_of_an_event_without_bookings_is_just_the_header(client, admin, factory):
    event = factory.event()
    body = client.get(f"/admin/events/{event.id}/bookings.csv").get_data(as_text=True)
    assert body.strip().startswith("reference,buyer_email") and len(body.strip().splitlines()) == 1


# --- cancellations -----------------------------------------------------------------------------


def test_cancel_event_asks_first(client, admin, factory, db_session):
    event = factory.event()
    paid_order(factory.user(), event, seat_ids(event, 2))
    page = text(client.get(f"/admin/events/{event.id}/cancel"))
    assert "1 live order(s) will be cancelled; 1 paid order(s) will be refunded in full (€50.00)" in page
    db_session.expire_all()
    assert event.status == "published"


def test_cancel_event_releases_holds_cancels_and_refunds_bookings(client, admin, factory, db_session, redis_client):
    event = factory.event()
    ids = seat_ids(event)
    paid_a = paid_order(factory.user(), event, ids[:2])
    paid_b = paid_order(factory.user(), event, ids[2:3])
    held = booking.hold(factory.user(), event, ids[3:5])

    response = post_form(client, f"/admin/events/{event.id}/cancel")
    assert response.status_code == 302
    page = text(client.get(response.headers["Location"]))
    assert "2 order(s) are being cancelled and refunded in the background" in page
    # The paid orders are cancelled by a job, one unit of work each (tests/audit/test_cancellation_jobs.py).
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)
    page = text(client.get(response.headers["Location"]))
    assert "Cancelling 2 order(s)" in page and "€75.00" in page and "Finished." in page

    db_session.expire_all()
    assert event.status == "cancelled" and event.cancelled_at is not None
    for order in (paid_a, paid_b):
        db_session.refresh(order)
        assert (order.status, order.payment_status, order.refunded_amount) == (
            "cancelled",
            "refunded",
            order.total_amount,
        )
    db_session.refresh(held)
    assert (held.status, held.payment_status) == ("cancelled", "pending")
    assert {seat.status for seat in db_session.scalars(sa.select(Seat).where(Seat.event_id == event.id))} == {
        "available"
    }
    refunds = db_session.scalars(sa.select(Payment).where(Payment.kind == "refund")).all()
    assert sorted(p.amount for p in refunds) == [Decimal("25.00"), Decimal("50.00")]
    assert_invariants()
    assert "Cancel event" not in text(client.get(f"/admin/events/{event.id}"))


def test_cancelling_a_cancelled_event_changes_nothing(client, admin, factory, db_session):
    event = factory.event()
    booking.cancel_event(event)
    response = post_form(client, f"/admin/events/{event.id}/cancel")
    assert "already cancelled" in text(client.get(response.headers["Location"]))


def test_cancel_a_draft(client, admin, factory, db_session):
    event = factory.event(status="draft")
    post_form(client, f"/admin/events/{event.id}/cancel")
    db_session.expire_all()
    assert event.status == "cancelled"


def test_cancel_one_seat_refunds_it_and_frees_the_seat(client, admin, factory, db_session):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 2))
    first = order.bookings[0]
    page = text(client.get(f"/admin/bookings/{first.id}/cancel"))
    assert "€25.00 is refunded" in page
    response = post_form(client, f"/admin/bookings/{first.id}/cancel", {"reason": "Seat broken"})
    assert response.headers["Location"].endswith(f"/admin/orders/{order.reference}")
    assert "Seat A1 of" in text(client.get(response.headers["Location"]))

    db_session.expire_all()
    first, second = order.bookings
    assert (first.status, first.payment_status) == ("cancelled", "refunded")
    assert (second.status, second.payment_status) == ("confirmed", "paid")
    assert (order.status, order.refunded_amount) == ("confirmed", Decimal("25.00"))
    assert db_session.get(Seat, first.seat_id).status == "available"
    assert db_session.get(Seat, second.seat_id).status == "booked"
    assert_invariants()


def test_cancelling_the_last_seat_cancels_the_order(client, admin, factory, db_session):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 1))
    post_form(client, f"/admin/bookings/{order.bookings[0].id}/cancel")
    db_session.expire_all()
    assert (order.status, order.payment_status) == ("cancelled", "refunded")


def test_cancelling_a_cancelled_booking_is_refused(client, admin, factory, db_session):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 2))
    booking.cancel_booking(order.bookings[0])
    response = post_form(client, f"/admin/bookings/{order.bookings[0].id}/cancel")
    assert "already cancelled" in text(client.get(response.headers["Location"]))
    db_session.expire_all()
    assert order.refunded_amount == Decimal("25.00")


def test_cancel_a_whole_order(client, admin, factory, db_session):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 3))
    assert "refunded in full (€75.00)" in text(client.get(f"/admin/orders/{order.reference}/cancel"))
    response = post_form(client, f"/admin/orders/{order.reference}/cancel")
    assert "€75.00 refunded" in text(client.get(response.headers["Location"]))
    db_session.expire_all()
    assert (order.status, order.payment_status) == ("cancelled", "refunded")
    assert_invariants()


def test_cancel_a_held_order_frees_its_seats_without_a_refund(client, admin, factory, db_session):
    event = factory.event()
    order = booking.hold(factory.user(), event, seat_ids(event, 2))
    post_form(client, f"/admin/orders/{order.reference}/cancel")
    db_session.expire_all()
    assert (order.status, order.refunded_amount) == ("cancelled", Decimal("0.00"))
    assert not db_session.scalars(sa.select(Payment)).all()
    assert_invariants()


def test_order_page_shows_seats_and_the_ledger(client, admin, factory):
    event = factory.event()
    order = paid_order(factory.user(email="ada@example.com"), event, seat_ids(event, 2))
    booking.cancel_booking(order.bookings[0])
    page = text(client.get(f"/admin/orders/{order.reference}"))
    assert "ada@example.com" in page and "A1" in page and "A2" in page
    assert order.provider_reference in page
    assert "refund (one seat)" in page
    assert client.get("/admin/orders/SP-NOPE").status_code == 404


# --- payments ----------------------------------------------------------------------------------


def test_payments_list_filters_by_event_and_status(client, admin, factory, db_session):
    event, other = factory.event(name="Jazz Night"), factory.event(name="Hamlet")
    paid = paid_order(factory.user(), event, seat_ids(event, 1))
    refunded = paid_order(factory.user(), event, seat_ids(event)[1:2])
    booking.cancel_order(refunded)
    declined_order = booking.hold(factory.user(), other, seat_ids(other, 1))
    with contextlib.suppress(payments.PaymentDeclined):
        payments.pay_by_card(declined_order, user=declined_order.user, card_number=payments.CARD_DECLINED)
    db_session.expire_all()
    declined = db_session.get(Order, declined_order.id)

    page = text(client.get("/admin/payments"))
    assert all(o.reference in page for o in (paid, refunded, declined))
    assert paid.provider_reference in page and "····" in page
    only_paid = text(client.get("/admin/payments?status=paid"))
    assert paid.reference in only_paid and refunded.reference not in only_paid
    assert refunded.reference in text(client.get("/admin/payments?status=refunded"))
    assert declined.reference in text(client.get("/admin/payments?status=failed"))
    of_event = text(client.get(f"/admin/payments?event={other.id}"))
    assert declined.reference in of_event and paid.reference not in of_event


def test_admin_pages_stay_up_with_unusual_query_strings(client, admin, factory):
    factory.event()
    for path in (
        "/admin/payments?event=abc&status=x",
        "/admin/bookings?status=nope&page=-1",
        "/admin/events?page=999",
        "/admin/users?q=%25",
    ):
        assert client.get(path).status_code == 200, path


def test_dashboard_totals_include_the_money_of_cancelled_and_deleted_events(client, admin, factory, db_session):
    selling = factory.event(name="Selling", rows=2, columns=2)
    cancelled = factory.event(name="Called Off", rows=2, columns=2)
    deleted = factory.event(name="Gone", rows=2, columns=2)
    paid_order(factory.user(), selling, seat_ids(selling, 1))
    paid_order(factory.user(), cancelled, seat_ids(cancelled, 2))
    paid_order(factory.user(), deleted, seat_ids(deleted, 1))
    booking.cancel_event(cancelled)
    booking.cancel_event(deleted)
    events.delete_event(deleted)

    report = reports.dashboard()
    assert [row.event.name for row in report["sales"]] == ["Selling", "Called Off"]
    total = report["totals"]
    assert (total.revenue, total.refunded, total.orders) == (Decimal("25.00"), Decimal("75.00"), 3)
    assert (total.seats, total.sold, total.held, total.free) == (4, 1, 0, 3)
    page = text(client.get("/admin/"))
    assert "€75.00" in page and "Called Off" in page and "not selling" in page


def test_a_hold_that_ran_out_is_listed_as_expired_without_a_cancel_link(client, admin, factory):
    event = factory.event(name="Jazz Night")
    ids = seat_ids(event)
    live = booking.hold(factory.user(), event, ids[:1])
    ran_out = booking.hold(factory.user(), event, ids[1:2], now=utcnow() - timedelta(minutes=30))
    live_id, ran_out_id = live.bookings[0].id, ran_out.bookings[0].id

    page = client.get("/admin/bookings").get_data(as_text=True)
    assert f"/admin/bookings/{live_id}/cancel" in page and f"/admin/bookings/{ran_out_id}/cancel" not in page
    assert page.count('badge-expired">expired') == 1
    pending = client.get("/admin/bookings?status=pending").get_data(as_text=True)
    assert live.reference in pending and ran_out.reference not in pending
    expired = client.get("/admin/bookings?status=expired").get_data(as_text=True)
    assert ran_out.reference in expired and live.reference not in expired

    detail = client.get(f"/admin/orders/{ran_out.reference}").get_data(as_text=True)
    assert "Cancel" not in detail and 'badge-expired">expired' in detail
    assert 'badge-expired">expired' in client.get("/admin/").get_data(as_text=True)
