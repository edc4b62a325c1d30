"""The on-sale rush with the waiting room on and off: N buyers arrive within a few seconds on the
app servers (127.0.0.1 only) for one event's seats, each buyer a greenlet with its own keep-alive
connection and log-in (gevent, so thousands of buyers fit in one process).

Room on: a buyer asks the room's status endpoint (the first answer: a place), then waits as the
page does: on the room's stream while the answer says `listen` (`--room-client stream`, the page's
EventSource; the stream says `done` once admitted, and the buyer takes the page's way in,
/waiting-room/enter), else asking the status endpoint again when the answer says
(`poll_after_ms`; `--room-client poll`: always, the page's fallback without EventSource). Once
admitted it loads the event page, the map, holds one random free seat (another while seats are
left) and pays. Room off: a buyer does the same from the event page on. Reported per mode:
arrival to first answer p50/p95 (room off: the first hold's answer), admitted buyers' hold
p50/p95, sell-out time, seats sold once (database check), errors, and fairness: Spearman's rank
correlation between queue position and the order of purchases. Queue position is the order the
room admitted buyers in, as it publishes them (from the head of its queue; room off: arrival
order); `fairness_by_arrival` correlates arrival order and purchases, for both modes. Also the CPU seconds
the app servers and this load process used during the run (both share the machine's cores), and
how many room status requests and streams were made.

Writes its fixtures (an event, bench buyers) into DATABASE_URL, which must be the servers'.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import redis  # noqa: E402
from gevent.pool import Pool  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from app.services.live.publisher import room_channel  # noqa: E402
from scripts.bench import fixtures  # noqa: E402
from scripts.bench.client import Browser, cpu_seconds, percentile, server_pids  # noqa: E402
from scripts.bench.http_bench import database_check  # noqa: E402

JSON = {"Accept": "application/json"}
HOLD_TRIES = 8


def spearman(pairs) -> float | None:
    """Rank correlation of (x, y) pairs (distinct x and distinct y: ties are broken before)."""
    if len(pairs) < 3:
        return None
    n = len(pairs)
    x_rank = {x: rank for rank, x in enumerate(sorted(x for x, _ in pairs))}
    y_rank = {y: rank for rank, y in enumerate(sorted(y for _, y in pairs))}
    squared = sum((x_rank[x] - y_rank[y]) ** 2 for x, y in pairs)
    return round(1 - 6 * squared / (n * (n * n - 1)), 3)


def ms(values, fraction):
    return round(percentile(values, fraction) * 1000, 1) if values else None


def event_for(app, mode: str, rows: int, columns: int) -> int:
    from app.extensions import db
    from app.models import Event, WaitingRoomMode
    from app.services import waiting_room

    event_id = fixtures.big_event(app, f"Queue {mode} {time.time():.0f}", rows, columns)
    with app.app_context():
        event = db.session.get(Event, event_id)
        event.waiting_room = WaitingRoomMode.ALWAYS if mode == "on" else WaitingRoomMode.OFF
        db.session.commit()
        waiting_room.forget(event_id)  # each run has a new database, whose event ids an earlier run's room used
    return event_id


def user_ids(app, emails) -> list[int]:
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import User

    with app.app_context():
        found = dict(db.session.execute(sa.select(User.email, User.id).where(User.email.in_(emails))).all())
    return [found[email] for email in emails]


def log_in_all(base_urls, emails, concurrency=200):
    pool = Pool(concurrency)

    def log_in(index):
        for attempt in (1, 2, 3):
            browser = Browser(base_urls[index % len(base_urls)], timeout=120)
            browser.refresh_csrf("/auth/login")
            response = browser.post_form("/auth/login", {"email": emails[index], "password": fixtures.BENCH_PASSWORD})
            if response.status == 302:
                browser.refresh_csrf("/")
                return browser
            browser.close()
            if attempt == 3:
                errors = re.findall(r'class="(?:error|flash flash-error)"[^>]*>([^<]*)<', response.text)
                raise RuntimeError(f"log-in of {emails[index]} refused: {response.status} {errors}")
        return None

    return list(pool.imap(log_in, range(len(emails))))


class Run:
    def __init__(self, browsers, event_id, args, mode, user_ids):
        self.browsers, self.event_id, self.args, self.mode = browsers, event_id, args, mode
        self.user_ids = user_ids
        # Bounded: thousands of buyers read their place at once, and Redis caps its clients.
        self.redis = redis.Redis(connection_pool=redis.BlockingConnectionPool.from_url(os.environ["REDIS_URL"]))
        self.first_answer, self.holds, self.errors = [], [], Counter()
        self.admission_order = {}  # user id -> its rank in the order the room admitted (off: arrival)
        self.bought = []  # (buyer, time) in purchase order
        self.sold_out = False
        self.started = 0.0
        self.status_requests = 0
        self.hold_log = []  # (seconds into the run, seconds taken, status) of each hold
        self.admitted_at = {}  # buyer -> seconds into the run it learnt of its admission
        self.streams = 0

    def free_seats(self, browser):
        state = browser.get(f"/api/events/{self.event_id}/seats", JSON).json()
        return [seat[0] for seat in state["seats"] if seat[3] == "a"]

    def buy(self, index, browser, arrived=None) -> None:
        """Hold one random free seat (another one while it was taken) and pay for it. Given the
        arrival time, the first hold's answer counts as the buyer's first answer (room off)."""
        for _ in range(HOLD_TRIES):
            free = self.free_seats(browser)
            if not free:
                self.sold_out = True
                return
            began = time.perf_counter()
            response = browser.post_json(f"/api/events/{self.event_id}/holds", {"seat_ids": [random.choice(free)]})
            self.holds.append(time.perf_counter() - began)
            self.hold_log.append((round(began - self.started, 3), round(self.holds[-1], 3), response.status))
            if arrived is not None:
                self.first_answer.append(time.perf_counter() - arrived)
                arrived = None
            if response.status == 201:
                reference = response.json()["reference"]
                paid = browser.post_form(
                    f"/orders/{reference}/checkout", {"method": "card", "card_number": "4242424242424242"}
                )
                if paid.status == 302 and paid.headers.get("Location", "").endswith(f"/orders/{reference}"):
                    self.bought.append((index, time.perf_counter()))
                else:
                    self.errors[f"pay-{paid.status}"] += 1
                return
            code = response.json().get("code") if response.body else None
            if response.status != 409 or code != "seat_unavailable":
                self.errors[f"hold-{response.status}-{code}"] += 1
                return

    def buyer(self, index):
        browser = self.browsers[index]
        gevent.sleep(self.args.arrival_seconds * index / len(self.browsers))
        arrived = time.perf_counter()
        try:
            if self.mode == "off":
                self.admission_order[self.user_ids[index]] = index  # the free-for-all's order: arrival
                browser.refresh_csrf(f"/events/{self.event_id}")  # the page an admitted buyer is sent to
                self.buy(index, browser, arrived)
                return
            status = self.room_status(browser)
            if status is None:
                return
            self.first_answer.append(time.perf_counter() - arrived)
            while time.perf_counter() < self.deadline and not self.sold_out:
                if status["state"] in ("admitted", "open"):
                    self.admitted_at[index] = time.perf_counter() - self.started
                    browser.refresh_csrf(f"/events/{self.event_id}")
                    self.buy(index, browser)
                    return
                if self.args.room_client == "stream" and status.get("listen"):
                    news = self.wait_on_stream(browser)
                    if news is not None:
                        status = news
                        continue
                else:
                    pause = status.get("poll_after_ms", self.args.poll_seconds * 1000) / 1000
                    gevent.sleep(pause * random.uniform(0.8, 1.2))
                status = self.room_status(browser)  # polling, or the stream ended without news
                if status is None:
                    return
        except Exception as error:  # counted: a benchmark must show failures, not hide them
            self.errors[type(error).__name__] += 1

    def room_status(self, browser):
        """The room's status JSON (joining, or keeping the place); None after an error (counted)."""
        response = browser.get(f"/api/events/{self.event_id}/waiting-room", JSON)
        self.status_requests += 1
        if response.status != 200:
            self.errors[f"room-{response.status}"] += 1
            return None
        return response.json()

    def wait_on_stream(self, browser):
        """The room's stream until it says `done`: admitted (through the page's way in: the
        admission cookie) or open; None if it ended otherwise (the buyer asks the status)."""
        self.streams += 1
        for name, data in browser.events(f"/events/{self.event_id}/waiting-room/stream"):
            if name != "done":
                if self.sold_out or time.perf_counter() > self.deadline:
                    return None
                continue
            status = json.loads(data)
            if status["state"] == "admitted":
                entered = browser.get(f"/events/{self.event_id}/waiting-room/enter")
                if not entered.headers.get("Location", "").endswith(f"/events/{self.event_id}"):
                    self.errors[f"enter-{entered.status}"] += 1
            return status if status["state"] in ("admitted", "open") else None
        return None

    def listen_to_the_room(self, subscribed):
        """Note the order the room admits buyers in, as it publishes them (it admits from the head
        of its queue, so this is the queue's order as it was served)."""
        pubsub = self.redis.pubsub()
        pubsub.subscribe(room_channel(self.event_id, os.environ["REDIS_URL"]))
        for message in pubsub.listen():
            if message["type"] == "subscribe":
                subscribed.set()
            elif message["type"] == "message":
                for user_id in json.loads(message["data"]).get("users", ()):
                    self.admission_order.setdefault(user_id, len(self.admission_order))

    def run(self):
        servers = [pid for url in self.args.base_url for pid in server_pids(url.rsplit(":", 1)[1])]
        servers_cpu, own_cpu = cpu_seconds(servers), _own_cpu_seconds()
        if self.mode == "on":
            subscribed = gevent.event.Event()
            listener = gevent.spawn(self.listen_to_the_room, subscribed)
            subscribed.wait(5)
        self.started = time.perf_counter()
        self.deadline = self.started + self.args.seconds
        jobs = [gevent.spawn(self.buyer, index) for index in range(len(self.browsers))]
        seats = self.args.rows * self.args.columns
        bound = self.started + self.args.seconds + 30
        # Once every seat is sold, buyers still waiting on a stream would wait out the bound.
        while not all(job.dead for job in jobs) and time.perf_counter() < bound and len(self.bought) < seats:
            gevent.sleep(0.5)
        gevent.killall([job for job in jobs if not job.dead], block=True, timeout=5)
        elapsed = time.perf_counter() - self.started
        servers_cpu, own_cpu = cpu_seconds(servers) - servers_cpu, _own_cpu_seconds() - own_cpu
        sold_out_s = None
        if len(self.bought) >= seats:
            sold_out_s = round(self.bought[-1][1] - self.started, 2)
        if self.args.trace:
            with open(self.args.trace, "w") as trace:
                for rank, (buyer, when) in enumerate(self.bought):
                    row = {
                        "buyer": buyer,
                        "admitted_as": self.admission_order.get(self.user_ids[buyer]),
                        "rank": rank,
                        "bought_s": round(when - self.started, 3),
                        "admitted_s": round(self.admitted_at.get(buyer, -1), 3),
                    }
                    trace.write(json.dumps(row) + "\n")
                for at, took, status in self.hold_log:
                    trace.write(json.dumps({"hold_at_s": at, "took_s": took, "status": status}) + "\n")
        if self.mode == "on":
            listener.kill()
        admitted = [(self.admission_order.get(self.user_ids[buyer], math.inf), buyer) for buyer, _ in self.bought]
        fairness = spearman([(order, rank) for rank, order in enumerate(admitted)])
        by_arrival = spearman([(buyer, rank) for rank, (buyer, _) in enumerate(self.bought)])
        return {
            "room": self.mode,
            "buyers": len(self.browsers),
            "servers": len(self.args.base_url),
            "seats": self.args.rows * self.args.columns,
            "arrival_s": self.args.arrival_seconds,
            "first_answer_p50_ms": ms(self.first_answer, 0.5),
            "first_answer_p95_ms": ms(self.first_answer, 0.95),
            "answered": len(self.first_answer),
            "hold_p50_ms": ms(self.holds, 0.5),
            "hold_p95_ms": ms(self.holds, 0.95),
            "holds_attempted": len(self.holds),
            "bought": len(self.bought),
            "sold_out_s": sold_out_s,
            "elapsed_s": round(elapsed, 1),
            "errors": dict(self.errors),
            "fairness_spearman": fairness,
            "fairness_by_arrival": by_arrival,
            "room_client": self.args.room_client if self.mode == "on" else None,
            "status_requests": self.status_requests,
            "streams": self.streams,
            "servers_cpu_s": round(servers_cpu, 1),
            "load_process_cpu_s": round(own_cpu, 1),
        }


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", action="append", required=True, help="repeat for several servers")
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--arrival-seconds", type=float, default=10)
    parser.add_argument("--poll-seconds", type=float, default=3, help="polling interval if the server gives none")
    parser.add_argument("--seconds", type=float, default=120, help="bound of each run")
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--modes", default="on,off")
    parser.add_argument("--trace", help="write each purchase (queue number, purchase rank, times) here as JSON lines")
    parser.add_argument(
        "--room-client",
        choices=("stream", "poll"),
        default="stream",
        help="how a waiting buyer hears of its admission: the room's stream (the page) or polling (its fallback)",
    )
    args = parser.parse_args()
    app = fixtures.make_app()
    emails = fixtures.buyers(app, args.buyers)
    status = 0
    print(f"# logging in {args.buyers} buyers...", file=sys.stderr, flush=True)
    began = time.perf_counter()
    browsers = log_in_all(args.base_url, emails)
    print(f"# logged in in {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    ids = user_ids(app, emails)
    for mode in args.modes.split(","):
        event_id = event_for(app, mode, args.rows, args.columns)
        result = Run(browsers, event_id, args, mode, ids).run()
        check = database_check(app, event_id)
        result["seats_sold"] = check["booked"]
        result["sold_once"] = check["max_live_per_seat"] <= 1 and check["consistent"]
        print(json.dumps(result), flush=True)
        for browser in browsers:
            browser.close()  # a request cut off at the time limit leaves its connection unusable
        if result["errors"] or not result["sold_once"]:
            status = 1
    for browser in browsers:
        browser.close()
    return status


if __name__ == "__main__":
    sys.exit(main())
