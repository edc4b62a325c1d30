"""HTTP benchmarks against running StagePass servers on this machine (never another host).

    throughput  requests/s of holds and seat-map reads as ratios to a trivial endpoint, same server, same run
    rush        N buyers fight over an event's seats through HTTP until it sells out
    checkin     two doors scan every ticket of a sold-out 400-seat event, as a ratio to the trivial endpoint

Both write fixtures (an event, bench buyers) into DATABASE_URL, which must be the servers' database.
See scripts/bench/run.sh for the whole set-up; results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scripts.bench import fixtures
from scripts.bench.client import Browser, cpu_seconds, percentile, server_pids

TRIVIAL_PATH = "/livez"


def logged_in_browsers(base_urls, emails, workers=16):
    """One logged-in Browser per email, spread round-robin over the servers."""

    def login(index):
        browser = Browser(base_urls[index % len(base_urls)])
        browser.log_in(emails[index], fixtures.BENCH_PASSWORD)
        return browser

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(login, range(len(emails))))


def free_seats(browser, event_id):
    response = browser.get(f"/api/events/{event_id}/seats")
    return [seat[0] for seat in response.json()["seats"] if seat[3] == "a"]


class Phase:
    """Run `action(worker_index)` from `concurrency` threads for `seconds`; count outcomes and latencies,
    and the CPU the servers (gunicorn on `ports`) and this load generator spent meanwhile."""

    def __init__(self, name, concurrency, seconds, ports=()):
        self.name, self.concurrency, self.seconds = name, concurrency, seconds
        self.latencies, self.outcomes = [], Counter()
        self.lock = threading.Lock()
        self.pids = [pid for port in ports for pid in server_pids(port)]

    def run(self, action):
        """Run until the time is up or an action says "exhausted" (its supply ran out: the phase
        ends there, so a rate is never diluted by workers idling with nothing left to do)."""
        deadline = time.perf_counter() + self.seconds
        exhausted = threading.Event()

        def worker(index):
            latencies, outcomes = [], Counter()
            while time.perf_counter() < deadline and not exhausted.is_set():
                started = time.perf_counter()
                outcome = action(index)
                if outcome == "exhausted":
                    exhausted.set()
                    break
                latencies.append(time.perf_counter() - started)
                outcomes[outcome] += 1
            with self.lock:
                self.latencies.extend(latencies)
                self.outcomes.update(outcomes)

        started, server_cpu, client_cpu = time.perf_counter(), cpu_seconds(self.pids), time.process_time()
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.elapsed = time.perf_counter() - started
        self.server_cpu = cpu_seconds(self.pids) - server_cpu
        self.client_cpu = time.process_time() - client_cpu
        self.ran_out = exhausted.is_set()
        return self

    def rate(self, outcome="ok"):
        return self.outcomes[outcome] / self.elapsed

    def summary(self, outcome="ok"):
        done = sum(self.outcomes.values()) or 1
        return {
            "phase": self.name,
            "per_s": round(self.rate(outcome), 1),
            # Where the time went: 100% is one core busy for the whole phase (this machine has nproc).
            "server_cpu_pct": round(100 * self.server_cpu / self.elapsed),
            "client_cpu_pct": round(100 * self.client_cpu / self.elapsed),
            "server_cpu_ms_per_request": round(1000 * self.server_cpu / done, 2),
            "p50_ms": round(statistics.median(self.latencies) * 1000, 1) if self.latencies else 0,
            "p95_ms": round(percentile(self.latencies, 0.95) * 1000, 1),
            "outcomes": dict(self.outcomes),
            "seconds": round(self.elapsed, 2),
            **({"ran_out_of_seats": True} if self.ran_out else {}),
        }


def _hold_queues(app, hold_events, workers, seats_per_worker):
    """Each worker's (buyer, event, seat) holds: its own slice of every event's seats, shuffled."""
    queues = []
    for worker in range(workers):
        queue = []
        for event_id in hold_events:
            ids = fixtures.seat_ids(app, event_id)[worker::workers]
            random.shuffle(ids)
            queue.extend((worker * seats_per_worker + n, event_id, seat_id) for n, seat_id in enumerate(ids))
        queues.append(iter(queue))
    return queues


def _hold_action(browsers, queues):
    """Worker i's next hold: its buyer takes one seat of its slice ("exhausted" when none are left)."""

    def hold(i):
        try:
            buyer, event_id, seat_id = next(queues[i])
        except StopIteration:
            return "exhausted"
        response = browsers[buyer].post_json(f"/api/events/{event_id}/holds", {"seat_ids": [seat_id]})
        return "ok" if response.status == 201 else f"error-{response.status}"

    return hold


class Interleaved:
    """The hold's ratio to the trivial endpoint with both measured in alternating short phases.

    This machine's speed drifts by a third within seconds (a fixed Python loop takes 12 ms, then
    20 ms, then 12 ms again), so phases 8 s apart can see different machines. Here the same
    workers run `trivial` for one slice, then `hold` for the next, and so on until the holds run
    out. Each slice is a Phase: it ends when its last request is answered, so a slice's time
    includes the wait for its slowest requests (which counts against the hold, never for it).
    """

    def __init__(self, concurrency, slice_seconds, ports):
        self.concurrency, self.slice_seconds, self.ports = concurrency, slice_seconds, ports

    def run(self, trivial, hold):
        slices = {"trivial": [], "hold": []}
        while True:
            trivial_slice = Phase("trivial", self.concurrency, self.slice_seconds, self.ports).run(trivial)
            hold_slice = Phase("hold", self.concurrency, self.slice_seconds, self.ports).run(hold)
            if hold_slice.ran_out:  # a slice cut short by the seats running out is not counted
                break
            slices["trivial"].append(trivial_slice)
            slices["hold"].append(hold_slice)
        rates = {
            name: sum(phase.outcomes["ok"] for phase in phases) / (sum(phase.elapsed for phase in phases) or 1)
            for name, phases in slices.items()
        }
        cpu = {
            name: sum(phase.server_cpu for phase in phases) / (sum(phase.outcomes["ok"] for phase in phases) or 1)
            for name, phases in slices.items()
        }
        return {
            "phase": "interleaved",
            "slice_s": self.slice_seconds,
            "pairs": len(slices["hold"]),
            "trivial_per_s": round(rates["trivial"], 1),
            "hold_per_s": round(rates["hold"], 1),
            "ratio": round(rates["hold"] / (rates["trivial"] or 1), 3),
            "server_cpu_ms_per_trivial": round(1000 * cpu["trivial"], 2),
            "server_cpu_ms_per_hold": round(1000 * cpu["hold"], 2),
        }


def throughput(args):
    """Trivial endpoint vs seat-map reads (full and 304) vs holds, on one server, in one run.

    Holds: each worker owns a slice of every event's seats and its own buyers; a buyer holds one
    random seat of its slice per event (one open checkout per buyer per event), so every hold is
    a real, successful hold of a free seat and no release traffic dilutes the figure.
    """
    app = fixtures.make_app()
    ports = [urlsplit(url).port for url in args.base_url]
    events_per_round = args.hold_events
    seats_per_worker = -(-400 // args.concurrency)
    emails = fixtures.buyers(app, args.concurrency * seats_per_worker)
    print(f"logging in {len(emails)} buyers...", file=sys.stderr, flush=True)
    browsers = logged_in_browsers(args.base_url, emails)
    map_event = fixtures.big_event(app, f"Throughput map {time.time():.0f}", 20, 20)
    results = []

    def trivial(i):
        return "ok" if browsers[i].get(TRIVIAL_PATH).status == 200 else "error"

    def seatmap_full(i):
        return "ok" if browsers[i].get(f"/api/events/{map_event}/seats").status == 200 else "error"

    version = browsers[0].get(f"/api/events/{map_event}/seats").headers.get("ETag")

    def seatmap_conditional(i):
        status = browsers[i].get(f"/api/events/{map_event}/seats", headers={"If-None-Match": version}).status
        return "ok" if status in (200, 304) else "error"

    for _ in range(args.rounds):
        hold_events = [
            fixtures.big_event(app, f"Throughput holds {time.time():.0f}", 20, 20) for _ in range(events_per_round)
        ]
        hold = _hold_action(browsers, _hold_queues(app, hold_events, args.concurrency, seats_per_worker))

        round_results = {}
        for name, action, workers in (
            ("trivial", trivial, args.concurrency),
            ("seatmap_full", seatmap_full, args.concurrency),
            ("seatmap_304", seatmap_conditional, args.concurrency),
            ("hold", hold, args.concurrency),
        ):
            round_results[name] = Phase(name, workers, args.seconds, ports).run(action).summary()
        trivial_rate = round_results["trivial"]["per_s"] or 1
        for name in ("seatmap_full", "seatmap_304", "hold"):
            round_results[name]["ratio_to_trivial"] = round(round_results[name]["per_s"] / trivial_rate, 3)
        name = f"Throughput interleaved {time.time():.0f}"
        interleaved_events = [fixtures.big_event(app, name, 20, 20) for _ in range(events_per_round)]
        round_results["interleaved"] = Interleaved(args.concurrency, args.slice_seconds, ports).run(
            trivial, _hold_action(browsers, _hold_queues(app, interleaved_events, args.concurrency, seats_per_worker))
        )
        results.append(round_results)
        print(json.dumps(round_results), flush=True)

    medians = {
        name: {
            "per_s": statistics.median(r[name]["per_s"] for r in results),
            "ratio_to_trivial": statistics.median(r[name].get("ratio_to_trivial", 1.0) for r in results),
            "p50_ms": statistics.median(r[name]["p50_ms"] for r in results),
            "p95_ms": statistics.median(r[name]["p95_ms"] for r in results),
            "server_cpu_pct": statistics.median(r[name]["server_cpu_pct"] for r in results),
            "client_cpu_pct": statistics.median(r[name]["client_cpu_pct"] for r in results),
            "server_cpu_ms_per_request": statistics.median(r[name]["server_cpu_ms_per_request"] for r in results),
        }
        for name in results[0]
        if name != "interleaved"
    }
    medians["interleaved"] = {
        key: statistics.median(r["interleaved"][key] for r in results)
        for key in ("trivial_per_s", "hold_per_s", "ratio", "server_cpu_ms_per_hold", "server_cpu_ms_per_trivial")
    }
    print("MEDIANS " + json.dumps(medians))


def rush(args):
    """N logged-in buyers race for a fresh event's seats, round after round; medians at the end."""
    app = fixtures.make_app()
    emails = fixtures.buyers(app, args.buyers)
    print(f"logging in {args.buyers} buyers on {len(args.base_url)} server(s)...", file=sys.stderr, flush=True)
    browsers = logged_in_browsers(args.base_url, emails)
    results = [rush_round(app, browsers, args, number) for number in range(1, args.rounds + 1)]
    medians = {
        key: statistics.median(r[key] for r in results)
        for key in ("sold_out_s", "elapsed_s", "hold_p50_ms", "hold_p95_ms", "holds_attempted")
        if all(r[key] is not None for r in results)
    }
    print("MEDIANS " + json.dumps({"rounds": len(results), **medians}), flush=True)
    return 0 if all(r["ok"] for r in results) else 1


def rush_round(app, browsers, args, number):
    """One on-sale: every buyer holds 1-2 random free seats and pays by card, until sold out."""
    event_id = fixtures.big_event(app, f"Rush {number} {time.time():.0f}", args.rows, args.columns)
    seat_count = args.rows * args.columns
    barrier = threading.Barrier(len(browsers))
    hold_latencies, errors, sold = [], Counter(), []
    lock = threading.Lock()
    start = [0.0]
    sold_out_at = [None]
    deadline = time.perf_counter() + args.seconds

    def buyer(index):
        browser = browsers[index]
        barrier.wait()
        if index == 0:
            start[0] = time.perf_counter()
        local_latencies = []
        try:
            while time.perf_counter() < deadline:
                free = free_seats(browser, event_id)
                if not free:
                    return
                wanted = random.sample(free, min(len(free), random.choice((1, 1, 2))))
                began = time.perf_counter()
                response = browser.post_json(f"/api/events/{event_id}/holds", {"seat_ids": wanted})
                local_latencies.append(time.perf_counter() - began)
                if response.status == 201:
                    reference = response.json()["reference"]
                    paid = browser.post_form(
                        f"/orders/{reference}/checkout", {"method": "card", "card_number": "4242424242424242"}
                    )
                    # A paid order redirects to its confirmation; anything else did not sell.
                    if paid.status != 302 or not paid.headers.get("Location", "").endswith(f"/orders/{reference}"):
                        with lock:
                            errors[f"pay-{paid.status}"] += 1
                        return
                    with lock:
                        sold.extend(wanted)
                        if len(sold) >= seat_count and sold_out_at[0] is None:
                            sold_out_at[0] = time.perf_counter()
                    return
                if response.status not in (409, 503):
                    with lock:
                        errors[f"hold-{response.status}"] += 1
                    return
        except Exception as error:  # counted: a benchmark must show failures, not hide them
            with lock:
                errors[type(error).__name__] += 1
        finally:
            with lock:
                hold_latencies.extend(local_latencies)

    with ThreadPoolExecutor(max_workers=len(browsers)) as pool:
        list(pool.map(buyer, range(len(browsers))))
    elapsed = time.perf_counter() - start[0]

    check = database_check(app, event_id)
    result = {
        "round": number,
        "servers": len(args.base_url),
        "buyers": len(browsers),
        "seats": seat_count,
        "seats_sold": check["booked"],
        "sold_out_s": round(sold_out_at[0] - start[0], 2) if sold_out_at[0] else None,
        "elapsed_s": round(elapsed, 2),
        "holds_attempted": len(hold_latencies),
        "hold_p50_ms": round(statistics.median(hold_latencies) * 1000, 1) if hold_latencies else 0,
        "hold_p95_ms": round(percentile(hold_latencies, 0.95) * 1000, 1),
        "errors": dict(errors),
        "max_live_bookings_per_seat": check["max_live_per_seat"],
        "seats_booked_equals_confirmed_bookings": check["consistent"],
        "sold_to_buyers_equals_booked": len(sold) == len(set(sold)) == check["booked"],
    }
    result["ok"] = (
        not errors
        and check["booked"] == seat_count
        and check["max_live_per_seat"] <= 1
        and check["consistent"]
        and result["sold_to_buyers_equals_booked"]
    )
    print(json.dumps(result), flush=True)
    return result


def checkin(args):
    """Two doors (two staff accounts; each of `concurrency` workers has a connection per door) scan
    each of 400 tickets once per door, both doors reaching a ticket at about the same time: every
    ticket answers admitted at one door and already_checked_in at the other. Rate of check-in requests
    (both answers count: each is a full check-in) against /livez, same server, same run."""
    app = fixtures.make_app()
    ports = [urlsplit(url).port for url in args.base_url]
    staff = fixtures.door_staff(app, 2)
    print("selling a 400-seat event...", file=sys.stderr, flush=True)
    event_id, payloads = fixtures.sold_out_event(app, f"Door bench {time.time():.0f}", 20, 20)
    # Each worker holds a connection of each door: door d of worker i is browsers[2 * i + d].
    browsers = logged_in_browsers(args.base_url, [staff[d] for _ in range(args.concurrency) for d in (0, 1)])
    results = []

    def trivial(i):
        return "ok" if browsers[2 * i].get(TRIVIAL_PATH).status == 200 else "error"

    for _ in range(args.rounds):
        fixtures.reopen_doors(app, event_id)
        # The doors take turns on each ticket, so its two scans arrive at about the same time.
        scans = iter([(payload, door) for payload in payloads for door in (0, 1)])
        lock = threading.Lock()

        def scan(i, scans=scans, lock=lock):
            with lock:
                payload, door = next(scans, (None, None))
            if payload is None:
                return "exhausted"
            response = browsers[2 * i + door].post_json(
                f"/api/events/{event_id}/checkins", {"code": payload, "door": f"Door {door + 1}"}
            )
            return {200: "admitted", 409: "already_checked_in"}.get(response.status, f"error-{response.status}")

        round_results = {
            "trivial": Phase("trivial", args.concurrency, args.seconds, ports).run(trivial).summary(),
            "checkin": Phase("checkin", args.concurrency, args.seconds, ports).run(scan).summary("admitted"),
        }
        phase = round_results["checkin"]
        outcomes = phase["outcomes"]
        requests = outcomes.get("admitted", 0) + outcomes.get("already_checked_in", 0)
        phase["per_s"] = round(requests / phase["seconds"], 1)
        phase["ratio_to_trivial"] = round(phase["per_s"] / (round_results["trivial"]["per_s"] or 1), 3)
        phase["tickets_checked_in"] = fixtures.checked_in(app, event_id)
        phase["ok"] = outcomes.get("admitted", 0) == phase["tickets_checked_in"] == len(payloads) and outcomes.get(
            "already_checked_in", 0
        ) == len(payloads)
        results.append(round_results)
        print(json.dumps(round_results), flush=True)

    medians = {
        name: {
            key: statistics.median(r[name][key] for r in results)
            for key in ("per_s", "p50_ms", "p95_ms", "server_cpu_ms_per_request")
        }
        for name in ("trivial", "checkin")
    }
    medians["checkin"]["ratio_to_trivial"] = statistics.median(r["checkin"]["ratio_to_trivial"] for r in results)
    print("MEDIANS " + json.dumps({"rounds": len(results), **medians}), flush=True)
    return 0 if all(r["checkin"]["ok"] for r in results) else 1


def database_check(app, event_id):
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import Booking, Seat

    with app.app_context():
        booked = db.session.scalar(
            sa.select(sa.func.count(Seat.id)).where(Seat.event_id == event_id, Seat.status == "booked")
        )
        per_seat = db.session.execute(
            sa.select(Booking.seat_id, sa.func.count(Booking.id))
            .where(Booking.event_id == event_id, Booking.status.in_(("pending", "confirmed")))
            .group_by(Booking.seat_id)
        ).all()
        confirmed = db.session.scalar(
            sa.select(sa.func.count(Booking.id)).where(Booking.event_id == event_id, Booking.status == "confirmed")
        )
    return {
        "booked": booked,
        "max_live_per_seat": max((count for _, count in per_seat), default=0),
        "consistent": booked == confirmed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--base-url", action="append", required=True, help="repeat for several servers")
    common.add_argument("--seconds", type=float, default=10)
    one = sub.add_parser("throughput", parents=[common])
    one.add_argument("--concurrency", type=int, default=16)
    one.add_argument("--rounds", type=int, default=3)
    one.add_argument("--hold-events", type=int, default=6, help="400-seat events per round for the hold phase")
    one.add_argument("--slice-seconds", type=float, default=1.0, help="length of each phase of the interleaved ratio")
    two = sub.add_parser("rush", parents=[common])
    two.add_argument("--buyers", type=int, default=1000)
    two.add_argument("--rounds", type=int, default=3)
    two.add_argument("--rows", type=int, default=20)
    two.add_argument("--columns", type=int, default=20)
    door = sub.add_parser("checkin", parents=[common])
    door.add_argument("--concurrency", type=int, default=8, help="workers, each with a connection per door")
    door.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for url in args.base_url:
        assert url.startswith(("http://127.0.0.1", "http://localhost")), "benchmarks target this machine only"
    sys.exit({"throughput": throughput, "rush": rush, "checkin": checkin}[args.command](args))


if __name__ == "__main__":
    main()
