"""Profile the hold request in-process (Flask test client, real MariaDB and Redis) with pyinstrument.

    DATABASE_URL=mysql+pymysql://root@127.0.0.1/stagepass_prof REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python scripts/bench/profile_hold.py --holds 300

Each hold is a fresh buyer taking one seat of a 20x20 event (seats are freed between events), so
the profile shows the hot path of a sale, not contention. Needs `pip install pyinstrument`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench import fixtures
from scripts.bench.client import percentile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=300)
    parser.add_argument("--html", help="also write the profile as HTML here")
    parser.add_argument("--no-profile", action="store_true", help="only time the holds (median ms)")
    parser.add_argument("--limits", action="store_true", help="keep the rate limits on, as in production")
    args = parser.parse_args()
    from app.extensions import limiter

    app = fixtures.make_app()
    limiter.enabled = False
    emails = fixtures.buyers(app, args.holds)
    clients = [fixtures.signed_in_test_client(app, email) for email in emails]
    limiter.enabled = args.limits
    seats, took = [], []
    cpu_started = time.process_time()
    if not args.no_profile:
        from pyinstrument import Profiler  # a profiling tool, not a dependency of StagePass

        profiler = Profiler(interval=0.0005)
    cpu = []
    for index, (client, token) in enumerate(clients):
        if not seats:
            event_id = fixtures.big_event(app, f"Profile {index}")
            seats = fixtures.seat_ids(app, event_id)
        seat = seats.pop()
        if not args.no_profile:
            profiler.start()
        started, cpu_before = time.perf_counter(), time.process_time()
        response = client.post(
            f"/api/events/{event_id}/holds", json={"seat_ids": [seat]}, headers={"X-CSRFToken": token}
        )
        took.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_before)
        if not args.no_profile:
            profiler.stop()
        assert response.status_code == 201, response.get_data(as_text=True)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(took)
    print(
        f"{len(took)} holds, median {statistics.median(took) * 1000:.2f} ms, "
        f"p95 {percentile(took, 0.95) * 1000:.2f} ms,"
        f" app CPU {cpu_ms:.2f} ms per hold (median {statistics.median(cpu) * 1000:.2f} ms)"
    )
    if args.no_profile:
        return
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        Path(args.html).write_text(profiler.output_html())


if __name__ == "__main__":
    main()
