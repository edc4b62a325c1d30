"""Cancelling an event or a selection of orders: the event first, then one unit of work per order
in an RQ job (run here by RQ's SimpleWorker in burst mode against the test Redis)."""

import html
from decimal import Decimal

import pytest
import redis
import sqlalchemy as sa
from rq import SimpleWorker

from app import jobs
from app.extensions import db
from app.models import AuditEntry, Event, Order, Payment, Seat
from app.services import booking, cancellations, payments
from tests.admin_support import paid_order, post_form, seat_ids
from tests.invariants import assert_invariants


def text(response):
    return html.unescape(response.get_data(as_text=True))


def work_off(redis_client):
    """Run every queued job to the end, in this process."""
    SimpleWorker([jobs.queue(redis_client)], connection=redis_client).work(burst=True)
    db.session.expire_all()


def refused_refund_order(factory, event, ids):
    buyer = factory.user()
    order = booking.hold(buyer, event, ids)
    return payments.pay_by_card(order, user=buyer, card_number=payments.CARD_REFUND_FAILS)


def order_states(*orders):
    db.session.expire_all()
    return [(db.session.get(Order, o.id).status, db.session.get(Order, o.id).payment_status) for o in orders]


def lines(action):
    return db.session.scalars(sa.select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()


def test_the_event_is_cancelled_first_and_the_job_cancels_its_orders(
    client, admin, factory, redis_client, sandbox_provider
):
    event = factory.event()
    ids = seat_ids(event)
    paid_a = paid_order(factory.user(), event, ids[:2])
    paid_b = paid_order(factory.user(), event, ids[2:3])
    held = booking.hold(factory.user(), event, ids[3:5])

    response = post_form(client, f"/admin/events/{event.id}/cancel")
    assert response.status_code == 302
    assert "2 order(s) are being cancelled and refunded in the background" in text(client.get(response.location))
    # Step one is committed: no more sales, holds released; the paid orders wait for the job.
    db.session.expire_all()
    assert db.session.get(Event, event.id).status == "cancelled"
    assert order_states(held, paid_a, paid_b) == [
        ("cancelled", "pending"),
        ("confirmed", "paid"),
        ("confirmed", "paid"),
    ]
    assert set(db.session.scalars(sa.select(Seat.status).where(Seat.id.in_(ids[3:5])))) == {"available"}
    with pytest.raises(booking.EventNotOnSale):
        booking.hold(factory.user(), event, ids[5:6])
    run = cancellations.latest_run_of_event(event.id)
    assert (run.state, run.total, run.done) == ("queued", 2, 0)

    work_off(redis_client)
    assert order_states(paid_a, paid_b) == [("cancelled", "refunded"), ("cancelled", "refunded")]
    run = cancellations.latest_run_of_event(event.id)
    assert (run.state, run.done, run.cancelled, run.failed, run.refunded_amount) == (
        "finished",
        2,
        2,
        {},
        Decimal("75.00"),
    )
    assert len(sandbox_provider.refunds) == 2
    page = text(client.get(f"/admin/events/{event.id}"))
    assert "Cancelling 2 order(s)" in page and "€75.00" in page and "Finished." in page
    assert "Orders still to cancel" not in page
    # The trail: the admin cancelled the event and the hold; the job, for the admin, the paid orders.
    assert lines("event.cancelled")[0].actor_id == admin.id
    by_job = [line for line in lines("order.cancelled") if line.actor_id is None]
    assert {line.subject_id for line in by_job} == {paid_a.id, paid_b.id}
    assert {line.actor_label for line in by_job} == {f"job:cancel-orders for {admin.email}"}
    assert_invariants()


def test_one_refused_refund_no_longer_rolls_back_the_others(client, admin, factory, redis_client, sandbox_provider):
    event = factory.event()
    ids = seat_ids(event)
    first = paid_order(factory.user(), event, ids[:1])
    refused = refused_refund_order(factory, event, ids[1:2])
    last = paid_order(factory.user(), event, ids[2:3])

    post_form(client, f"/admin/events/{event.id}/cancel")
    work_off(redis_client)

    assert order_states(first, refused, last) == [
        ("cancelled", "refunded"),
        ("confirmed", "paid"),
        ("cancelled", "refunded"),
    ]
    assert len(sandbox_provider.refunds) == 2
    run = cancellations.latest_run_of_event(event.id)
    assert (run.done, run.cancelled, list(run.failed)) == (3, 2, [str(refused.id)])
    assert "The card's bank refused the refund." in run.failed[str(refused.id)]["reason"]
    page = text(client.get(f"/admin/events/{event.id}"))
    assert "Orders still to cancel" in page and refused.reference in page
    assert "The card's bank refused the refund." in page
    assert "Retry cancelling and refunding these orders" in page
    [failure] = lines("order.refund_failed")
    assert failure.subject_id == refused.id and "bank refused" in failure.data["reason"]
    assert_invariants()


def test_a_failed_refund_can_be_retried(client, admin, factory, redis_client, sandbox_provider, monkeypatch):
    event = factory.event()
    ids = seat_ids(event)
    first = paid_order(factory.user(), event, ids[:1])
    second = paid_order(factory.user(), event, ids[1:2])
    working_refund = sandbox_provider.refund

    def provider_down_for_the_second(charge_reference, amount, *, idempotency_key):
        if second.reference in idempotency_key:
            raise TimeoutError("no answer")
        return working_refund(charge_reference, amount, idempotency_key=idempotency_key)

    monkeypatch.setattr(sandbox_provider, "refund", provider_down_for_the_second)
    post_form(client, f"/admin/events/{event.id}/cancel")
    work_off(redis_client)
    assert order_states(first, second) == [("cancelled", "refunded"), ("confirmed", "paid")]
    assert "did not answer" in text(client.get(f"/admin/events/{event.id}"))

    monkeypatch.setattr(sandbox_provider, "refund", working_refund)
    response = post_form(client, f"/admin/events/{event.id}/cancel/retry")
    assert response.status_code == 302
    retry = cancellations.latest_run_of_event(event.id)
    assert (retry.order_ids, retry.state) == ([second.id], "queued")
    work_off(redis_client)
    assert order_states(first, second) == [("cancelled", "refunded"), ("cancelled", "refunded")]
    assert len(sandbox_provider.refunds) == 2
    page = text(client.get(f"/admin/events/{event.id}"))
    assert "Orders still to cancel" not in page
    # Nothing left to retry: refused, and nothing queued.
    post_form(client, f"/admin/events/{event.id}/cancel/retry")
    assert cancellations.latest_run_of_event(event.id).id == retry.id
    assert_invariants()


def test_progress_is_reported_after_each_order(client, admin, factory, redis_client, sandbox_provider, monkeypatch):
    event = factory.event()
    ids = seat_ids(event)
    orders = [paid_order(factory.user(), event, ids[n : n + 1]) for n in range(3)]
    seen = []
    cancel_order = booking.cancel_order

    def watching(order, **kwargs):
        run = cancellations.latest_run_of_event(event.id)
        progress = client.get(f"/admin/cancellations/{run.id}/progress").get_json()
        seen.append((progress["state"], progress["done"], progress["total"], progress["refunded_text"]))
        return cancel_order(order, **kwargs)

    monkeypatch.setattr(booking, "cancel_order", watching)
    post_form(client, f"/admin/events/{event.id}/cancel")
    work_off(redis_client)
    assert seen == [("running", 0, 3, "€0.00"), ("running", 1, 3, "€25.00"), ("running", 2, 3, "€50.00")]
    run = cancellations.latest_run_of_event(event.id)
    final = client.get(f"/admin/cancellations/{run.id}/progress").get_json()
    assert (final["state"], final["done"], final["finished"], final["refunded"]) == ("finished", 3, True, "75.00")
    assert [state for state, _ in order_states(*orders)] == ["cancelled"] * 3


def test_an_order_cancelled_meanwhile_is_skipped_not_refunded_twice(
    client, admin, factory, redis_client, sandbox_provider
):
    event = factory.event()
    ids = seat_ids(event)
    first = paid_order(factory.user(), event, ids[:1])
    paid_order(factory.user(), event, ids[1:2])
    post_form(client, f"/admin/events/{event.id}/cancel")
    booking.cancel_order(db.session.get(Order, first.id))  # another admin, before the job starts
    work_off(redis_client)
    run = cancellations.latest_run_of_event(event.id)
    assert (run.done, run.cancelled, run.skipped, run.failed) == (2, 1, 1, {})
    assert len(sandbox_provider.refunds) == 2  # one each
    assert db.session.scalar(sa.select(sa.func.count(Payment.id)).where(Payment.kind == "refund")) == 2
    assert_invariants()


@pytest.mark.mariadb
def test_two_runs_racing_over_the_same_orders_refund_each_once(app, factory, sandbox_provider):
    """Two jobs over the same orders at once, each on its own connection: under the lock each order
    is cancelled by one of them and skipped by the other."""
    from tests.concurrency.test_concurrency import run_together

    event = factory.event(rows=2, columns=5)
    ids = seat_ids(event)
    orders = [paid_order(factory.user(), event, ids[n : n + 1]).id for n in range(8)]
    admin = factory.admin()
    cancellations.mark_event_cancelled(event, actor=admin)
    runs = [cancellations._new_run(orders, admin, event.id) for _ in range(2)]

    results = run_together(app, 2, lambda index: cancellations.run_cancellation(runs[index].id))
    assert [kind for kind, _ in results] == ["ok", "ok"], results
    done = [result for _, result in results]
    assert sum(run.cancelled for run in done) == 8 and sum(run.skipped for run in done) == 8
    assert all(not run.failed for run in done)
    assert len(sandbox_provider.refunds) == 8
    assert_invariants()


def test_a_dead_queue_leaves_the_event_cancelled_and_the_orders_to_retry(
    client, admin, factory, redis_client, sandbox_provider, monkeypatch
):
    event = factory.event()
    order = paid_order(factory.user(), event, seat_ids(event, 1))

    def queue_down(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(jobs, "enqueue_cancellation", queue_down)
    response = post_form(client, f"/admin/events/{event.id}/cancel")
    page = text(client.get(response.location))
    assert "the background queue (Redis) is unavailable" in page
    assert "Orders still to cancel" in page and "Not tried yet." in page
    assert order_states(order) == [("confirmed", "paid")]
    monkeypatch.undo()
    post_form(client, f"/admin/events/{event.id}/cancel/retry")
    work_off(redis_client)
    assert order_states(order) == [("cancelled", "refunded")]


def test_bulk_cancel_of_selected_orders(client, admin, factory, redis_client, sandbox_provider):
    event, other = factory.event(), factory.event()
    first = paid_order(factory.user(), event, seat_ids(event, 2))
    second = paid_order(factory.user(), other, seat_ids(other, 1))
    kept = paid_order(factory.user(), event, seat_ids(event)[2:3])
    refused = refused_refund_order(factory, other, seat_ids(other)[1:2])
    for listing in ("/admin/bookings", "/admin/payments"):  # seats, and orders
        page = text(client.get(listing))
        assert f'name="order_id" value="{first.id}"' in page and 'form="bulk-cancel"' in page

    chosen = {"order_id": [str(first.id), str(second.id), str(refused.id)], "back": "/admin/bookings?status=confirmed"}
    confirm = post_form(client, "/admin/bookings/cancel-orders", chosen)
    assert confirm.status_code == 200
    page = text(confirm)
    assert "Cancel 3 order(s)?" in page and "€100.00 in all" in page and kept.reference not in page
    assert order_states(first) == [("confirmed", "paid")]  # asking changes nothing

    response = post_form(client, "/admin/bookings/cancel-orders", {**chosen, "confirmed": "yes"})
    assert response.status_code == 302 and "/admin/cancellations/" in response.location
    run_page = response.location
    work_off(redis_client)
    assert order_states(first, second, refused, kept) == [
        ("cancelled", "refunded"),
        ("cancelled", "refunded"),
        ("confirmed", "paid"),
        ("confirmed", "paid"),
    ]
    page = text(client.get(run_page))
    assert "Finished." in page and refused.reference in page and "bank refused" in page
    assert "Retry cancelling and refunding these orders" in page


def test_bulk_cancel_needs_a_selection(client, admin, factory):
    response = post_form(client, "/admin/bookings/cancel-orders", {"order_id": ["x", "0"]})
    assert response.status_code == 302 and response.location == "/admin/bookings"
    assert "Select at least one order" in text(client.get("/admin/bookings"))


def test_unknown_runs_are_not_found(client, admin):
    assert client.get("/admin/cancellations/0123456789abcdef").status_code == 404
    assert client.get("/admin/cancellations/../../etc").status_code == 404
    missing = client.get("/admin/cancellations/0123456789abcdef/progress")
    assert missing.status_code == 404 and missing.get_json()["code"] == "run_not_found"


def test_a_run_whose_job_died_can_be_retried(client, admin, factory, redis_client, sandbox_provider):
    """The worker died mid-run (its job failed or is gone): the run shows as interrupted, and the
    orders it never reached are listed with the retry button."""
    event = factory.event()
    ids = seat_ids(event)
    first = paid_order(factory.user(), event, ids[:1])
    second = paid_order(factory.user(), event, ids[1:2])
    post_form(client, f"/admin/events/{event.id}/cancel")
    run = cancellations.latest_run_of_event(event.id)
    run.state, run.done = "running", 0
    cancellations.save_run(run)
    assert "Orders still to cancel" not in text(client.get(f"/admin/events/{event.id}"))  # still working
    jobs.queue(redis_client).empty()
    redis_client.delete(f"rq:job:stagepass-cancellation-{run.id}")

    progress = client.get(f"/admin/cancellations/{run.id}/progress").get_json()
    assert (progress["state"], progress["finished"]) == ("interrupted", True)
    page = text(client.get(f"/admin/cancellations/{run.id}"))
    assert "Interrupted" in page and first.reference in page and second.reference in page
    response = post_form(client, f"/admin/cancellations/{run.id}/retry")
    assert response.status_code == 302 and run.id not in response.location
    work_off(redis_client)
    assert order_states(first, second) == [("cancelled", "refunded"), ("cancelled", "refunded")]


def test_a_run_still_working_cannot_be_retried(client, admin, factory, redis_client, sandbox_provider):
    event = factory.event()
    paid_order(factory.user(), event, seat_ids(event, 1))
    post_form(client, f"/admin/events/{event.id}/cancel")
    run = cancellations.latest_run_of_event(event.id)
    response = post_form(client, f"/admin/cancellations/{run.id}/retry")
    assert response.location == f"/admin/cancellations/{run.id}"
    assert "still working" in text(client.get(response.location))
    assert cancellations.latest_run_of_event(event.id).id == run.id


def test_an_event_whose_run_is_still_working_is_not_retried(client, admin, factory, redis_client, sandbox_provider):
    event = factory.event()
    paid_order(factory.user(), event, seat_ids(event, 1))
    post_form(client, f"/admin/events/{event.id}/cancel")
    run = cancellations.latest_run_of_event(event.id)
    response = post_form(client, f"/admin/events/{event.id}/cancel/retry")
    assert "still cancelling" in text(client.get(response.location))
    assert cancellations.latest_run_of_event(event.id).id == run.id
