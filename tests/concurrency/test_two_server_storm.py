"""A booking storm split across two app servers: real HTTP, real sessions and CSRF tokens, one truth.

Many buyers, half on each server, are released together on the same few seats. Each tries what
the map still shows free, one or two seats at a time, until it holds some or nothing is left; a
winner pays through the other server. The end: every seat held or sold exactly once, every
refusal a clean 409 or 503 with its reason, no 500 and no traceback in either server's log.
"""

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import sqlalchemy as sa

from app.extensions import db
from app.models import Booking, Order
from app.services import payments
from scripts.bench.client import Browser
from tests.admin_support import seat_ids
from tests.invariants import assert_invariants
from tests.support import PASSWORD, app_servers

BUYERS = 40
SEATS = 4
CLEAN_REFUSALS = {409: {"seat_unavailable"}, 503: {"busy"}}
MAX_ATTEMPTS = 50


def logged_in(base_url, email):
    browser = Browser(base_url)
    browser.log_in(email, PASSWORD)
    return browser


def on_other_server(browser, base_url):
    """The same buyer (same session cookie) talking to another server."""
    other = Browser(base_url)
    other.cookies, other.csrf_token = dict(browser.cookies), browser.csrf_token
    return other


def test_a_storm_over_two_servers_sells_each_seat_once(app, factory, tmp_path):
    event = factory.event(rows=1, columns=SEATS)
    event_id, contested = event.id, seat_ids(event)
    emails = [factory.user().email for _ in range(BUYERS)]
    # The storm comes from one IP; the rate limits have tests of their own (test_security.py).
    with app_servers(app, 2, log_folder=tmp_path, RATELIMIT_ENABLED="0") as servers:
        with ThreadPoolExecutor(max_workers=8) as pool:
            browsers = list(pool.map(lambda i: logged_in(servers[i % 2], emails[i]), range(BUYERS)))
        start = threading.Barrier(BUYERS, timeout=60)
        outcomes = Counter()
        lock = threading.Lock()

        def storm(index):
            browser, rng = browsers[index], random.Random(index)
            start.wait()
            for _ in range(MAX_ATTEMPTS):
                seats = browser.get(f"/api/events/{event_id}/seats").json()["seats"]
                free = [seat[0] for seat in seats if seat[0] in contested and seat[3] == "a"]
                if not free:
                    return None
                wanted = rng.sample(free, min(len(free), rng.choice((1, 2))))
                response = browser.post_json(f"/api/events/{event_id}/holds", {"seat_ids": wanted})
                code = response.json().get("code") if response.status != 201 else None
                with lock:
                    outcomes[(response.status, code)] += 1
                if response.status == 201:
                    reference = response.json()["reference"]
                    payer = on_other_server(browser, servers[(index + 1) % 2])
                    paid = payer.post_form(
                        f"/orders/{reference}/checkout", {"method": "card", "card_number": payments.CARD_SUCCEEDS}
                    )
                    assert paid.status == 302 and paid.headers["Location"] == f"/orders/{reference}", (
                        paid.status,
                        paid.text[:300],
                    )
                    return reference
                assert code in CLEAN_REFUSALS.get(response.status, ()), (response.status, response.text[:300])
            raise AssertionError(f"buyer {index} still sees free seats after {MAX_ATTEMPTS} refused holds")

        with ThreadPoolExecutor(max_workers=BUYERS) as pool:
            references = [reference for reference in pool.map(storm, range(BUYERS)) if reference]

    logs = {path.name: path.read_text(errors="replace") for path in tmp_path.glob("server-*.log")}
    for name, log in logs.items():
        assert "Traceback" not in log and '" 500 ' not in log, f"{name}:\n{log[-3000:]}"
    assert outcomes[(201, None)] == len(references) and outcomes[(409, "seat_unavailable")] > 0, outcomes

    db.session.expire_all()
    live = db.session.scalars(
        sa.select(Booking).where(Booking.event_id == event_id, Booking.status.in_(("pending", "confirmed")))
    ).all()
    assert sorted(b.seat_id for b in live) == sorted(contested), "every seat held or sold exactly once"
    assert {b.status for b in live} == {"confirmed"}
    orders = db.session.scalars(sa.select(Order).where(Order.event_id == event_id)).all()
    assert sorted(order.reference for order in orders) == sorted(references)
    assert_invariants()
