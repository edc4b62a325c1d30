"""Time to make the tickets PDF of a 6-ticket order: median of N runs, in-process, on DATABASE_URL.

    DATABASE_URL=mysql+pymysql://root@127.0.0.1/stagepass_bench .venv/bin/python scripts/bench/pdf.py --runs 21

Figures: tickets.pdf_for_order() for an event named in Western European text (PDF core fonts),
with the QR code cache emptied before each run and kept; the same for a name in Cyrillic (the
TrueType TICKET_PDF_FONT is embedded); and the whole GET /orders/<ref>/tickets.pdf through the app
(log-in session, order look-up, response).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import sqlalchemy as sa

from scripts.bench import fixtures

SEATS = 6


def paid_order(app, event_name: str, email: str) -> str:
    """A bench buyer's confirmed order of 6 seats at a new event; returns its reference."""
    from app.extensions import db
    from app.models import Event, User
    from app.services import booking, payments

    event_id = fixtures.big_event(app, event_name)
    seats = fixtures.seat_ids(app, event_id)[:SEATS]
    with app.app_context():
        buyer = db.session.scalar(sa.select(User).where(User.email == email))
        order = booking.hold(buyer, db.session.get(Event, event_id), seats)
        return payments.pay_by_card(order, user=buyer, card_number=payments.CARD_SUCCEEDS).reference


def time_service(app, reference: str, runs: int, *, cold: bool) -> tuple[list[float], list[float], bytes]:
    """Wall and CPU milliseconds of each pdf_for_order call (CPU time is what a busy machine distorts
    least). Cold: the QR code cache is emptied before each run, as for an order never shown before."""
    from app.extensions import db
    from app.models import Order
    from app.services import tickets

    wall, cpu, data = [], [], b""
    for _ in range(runs):
        if cold:
            tickets.qr_code.cache_clear()
        with app.app_context():
            order = db.session.scalar(sa.select(Order).where(Order.reference == reference))
            started, cpu_started = time.perf_counter(), time.process_time()
            data = tickets.pdf_for_order(order)
            cpu.append((time.process_time() - cpu_started) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
    return wall, cpu, data


def time_http(app, reference: str, email: str, runs: int) -> list[float]:
    from app.services import tickets

    client = app.test_client()
    login_page = client.get("/auth/login").get_data(as_text=True)
    token = login_page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    client.post("/auth/login", data={"email": email, "password": fixtures.BENCH_PASSWORD, "csrf_token": token})
    timings = []
    for _ in range(runs):
        tickets.qr_code.cache_clear()
        started = time.perf_counter()
        response = client.get(f"/orders/{reference}/tickets.pdf")
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200 and response.mimetype == "application/pdf", response.status
    return timings


def summary(name: str, timings: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(timings):.1f} ms, min {min(timings):.1f} ms, "
        f"max {max(timings):.1f} ms ({len(timings)} runs)"
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    from app.extensions import db, limiter

    load_before = load_average()
    app = fixtures.make_app()
    limiter.enabled = False
    [email] = fixtures.buyers(app, 1)
    stamp = f"{time.time():.0f}"
    western = paid_order(app, f"PDF benchmark {stamp} – Café Müller", email)
    cyrillic = paid_order(app, f"PDF benchmark {stamp} – Лебединое озеро", email)
    core_timings, core_cpu, data = time_service(app, western, args.runs, cold=True)
    warm_timings, warm_cpu, _ = time_service(app, western, args.runs, cold=False)
    font_timings, font_cpu, font_data = time_service(app, cyrillic, args.runs, cold=True)
    http_timings = time_http(app, western, email, args.runs)

    import pypdf  # requirements-dev.txt: checks that what was timed is a real 6-page PDF

    pages = len(pypdf.PdfReader(io.BytesIO(data)).pages)
    assert pages == SEATS and len(pypdf.PdfReader(io.BytesIO(font_data)).pages) == SEATS
    with app.app_context():
        print(f"database: {db.engine.url.render_as_string(hide_password=True)}")
    print(f"load average before: {load_before}, after: {load_average()} ({os.cpu_count()} cores)")
    print(
        f"order: {SEATS} tickets, {pages} pages, "
        f"{len(data) / 1024:.0f} KiB (core fonts), {len(font_data) / 1024:.0f} KiB (TrueType)"
    )
    print(summary("pdf_for_order, core fonts, QR codes not cached", core_timings))
    print(summary("  CPU time", core_cpu))
    print(summary("pdf_for_order, core fonts, QR codes cached", warm_timings))
    print(summary("  CPU time", warm_cpu))
    print(summary("pdf_for_order, TrueType font embedded, QR codes not cached", font_timings))
    print(summary("  CPU time", font_cpu))
    print(summary("GET /orders/<ref>/tickets.pdf, core fonts, QR codes not cached", http_timings))


if __name__ == "__main__":
    main()
