"""An on-sale rush in one process: N buyer threads, one barrier, the same hold() the web uses.

The buyers share a bounded pool of database connections, as web requests share an app server's
pool: thousands of buyers fit under MariaDB's default max_connections (151), and each buyer's time
is split into waiting for a connection and time in the database.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa
from werkzeug.security import generate_password_hash

from app.extensions import db
from app.models import Booking, Event, Order, OrderStatus, Seat, User, utcnow
from app.services import booking
from app.services.errors import DomainError, InvalidRequest, NotFound
from app.services.transactions import end_read, run_unit_of_work

SIM_EMAIL = "sim-{:05d}@simulate.stagepass.test"
CLEAN_REFUSALS = (booking.SeatUnavailable, booking.CheckoutAlreadyOpen, booking.SeatsBusy)
# Past a few dozen connections a 2-core database server only queues the extra ones itself.
DEFAULT_CONNECTIONS = 32


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _ms(value: float) -> float:
    return round(value, 1)


@dataclass
class Outcome:
    """One buyer's result: kind is ok, conflict or error; times from time.perf_counter()."""

    kind: str
    began: float | None = None
    connected: float | None = None
    ended: float | None = None
    detail: str | None = None


@dataclass
class SimulationResult:
    users: int
    seat_labels: list[str]
    connections: int = 0
    succeeded: int = 0
    conflicts: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    waits_ms: list[float] = field(default_factory=list)
    in_database_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    timed_out: int = 0
    live_bookings_per_seat: dict[str, int] = field(default_factory=dict)
    last_end: float = 0.0

    @property
    def database_consistent(self) -> bool:
        expected = 1 if self.succeeded == 1 else None
        counts = self.live_bookings_per_seat.values()
        return all(count <= 1 for count in counts) and (expected is None or all(c == 1 for c in counts))

    @property
    def passed(self) -> bool:
        return self.succeeded == 1 and self.errors == 0 and self.database_consistent

    def percentile(self, fraction: float) -> float:
        return _percentile(self.latencies_ms, fraction)

    def count(self, outcome: Outcome, stopped: float, timeout: float) -> None:
        """Add one buyer's outcome; a buyer still busy at `stopped` counts as an error until then."""
        if outcome.ended is None and outcome.kind != "error":
            self.timed_out += 1
            outcome.kind, outcome.detail = "error", f"did not finish within the --timeout of {timeout:g} s"
        if outcome.began is not None:
            ended = outcome.ended or stopped
            self.last_end = max(self.last_end, ended)
            self.latencies_ms.append((ended - outcome.began) * 1000)
            connected = outcome.connected or ended
            self.waits_ms.append((connected - outcome.began) * 1000)
            self.in_database_ms.append((ended - connected) * 1000)
        if outcome.kind == "ok":
            self.succeeded += 1
        elif outcome.kind == "conflict":
            self.conflicts += 1
        else:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(outcome.detail)

    def summary(self) -> dict:
        return {
            "users": self.users,
            "connections": self.connections,
            "succeeded": self.succeeded,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "p50_ms": _ms(statistics.median(self.latencies_ms)) if self.latencies_ms else 0.0,
            "p95_ms": _ms(self.percentile(0.95)),
            "max_ms": _ms(max(self.latencies_ms)) if self.latencies_ms else 0.0,
            "wait_p50_ms": _ms(_percentile(self.waits_ms, 0.5)),
            "wait_p95_ms": _ms(_percentile(self.waits_ms, 0.95)),
            "db_p50_ms": _ms(_percentile(self.in_database_ms, 0.5)),
            "db_p95_ms": _ms(_percentile(self.in_database_ms, 0.95)),
        }


def target_seats(seat_id: int, count: int) -> list[Seat]:
    """The seat and the count-1 seats to its right in the same row; refuses what does not exist."""
    first = db.session.get(Seat, seat_id)
    if first is None:
        raise NotFound(f"Seat {seat_id} does not exist.")
    seats = db.session.scalars(
        sa.select(Seat)
        .where(
            Seat.event_id == first.event_id,
            Seat.row == first.row,
            Seat.column.between(first.column, first.column + count - 1),
        )
        .order_by(Seat.column)
    ).all()
    if len(seats) != count:
        raise InvalidRequest(
            f"Row {first.row} has no {count} adjacent seats starting at {first.label} (seat {seat_id})."
        )
    return list(seats)


def ensure_buyers(count: int) -> list[int]:
    """Ids of `count` simulation buyers, creating the missing ones in one bulk insert."""
    emails = [SIM_EMAIL.format(i) for i in range(count)]
    existing = dict(db.session.execute(sa.select(User.email, User.id).where(User.email.in_(emails))).all())
    missing = [email for email in emails if email not in existing]
    if missing:
        # One hash for all: hashing each password would take longer than the rush itself.
        password_hash = generate_password_hash("simulated-buyer")
        now = utcnow()
        run_unit_of_work(
            lambda: db.session.execute(
                sa.insert(User),
                [
                    {
                        "email": email,
                        "name": email.split("@")[0],
                        "password_hash": password_hash,
                        "is_admin": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for email in missing
                ],
            )
        )
        existing = dict(db.session.execute(sa.select(User.email, User.id).where(User.email.in_(emails))).all())
    return [existing[email] for email in emails]


def reset(seats: list[Seat], buyer_ids: list[int]) -> int:
    """Free the seats (cancelling whatever holds them) and close the buyers' open checkouts."""
    event_id = seats[0].event_id
    freed = 0
    live = db.session.scalars(sa.select(Booking).where(Booking.live_seat_id.in_([seat.id for seat in seats]))).all()
    for live_booking in live:
        booking.cancel_booking(live_booking, reason="Reset by simulate-booking.")
        freed += 1
    open_orders = db.session.scalars(
        sa.select(Order).where(
            Order.event_id == event_id, Order.status == OrderStatus.PENDING, Order.user_id.in_(buyer_ids)
        )
    ).all()
    for order in open_orders:
        booking.cancel_order(order, reason="Reset by simulate-booking.")
    return freed


def live_bookings_per_seat(seats: list[Seat]) -> dict[str, int]:
    counts = dict(
        db.session.execute(
            sa.select(Booking.seat_id, sa.func.count(Booking.id))
            .where(Booking.seat_id.in_([s.id for s in seats]), Booking.status.in_(OrderStatus.LIVE))
            .group_by(Booking.seat_id)
        ).all()
    )
    return {seat.label: counts.get(seat.id, 0) for seat in seats}


def connection_room() -> tuple[int, int] | None:
    """(max_connections, connections open now) on MySQL/MariaDB; None for databases without a limit."""
    if db.engine.dialect.name not in ("mysql", "mariadb"):
        return None
    limit = db.session.scalar(sa.text("SELECT @@GLOBAL.max_connections"))
    in_use = int(db.session.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).one()[1])
    end_read()
    return limit, in_use


def choose_connections(users: int, requested: int | None) -> int:
    """The size of the buyers' pool: `requested`, or by default at most DEFAULT_CONNECTIONS and half
    of what the server has free (the app servers keep the rest); refuses more than the server has free."""
    room = connection_room()
    if requested is None:
        size = min(users, DEFAULT_CONNECTIONS)
        if room is not None:
            size = min(size, max(1, (room[0] - room[1]) // 2))
    else:
        size = min(users, requested)
    if room is not None and size > room[0] - room[1]:
        limit, in_use = room
        raise InvalidRequest(
            f"--connections {size} needs {size} database connections at once, but the server's max_connections "
            f"is {limit} with {in_use} open already. Choose fewer --connections, or raise the limit for the run "
            f"(as a database admin: SET GLOBAL max_connections={size + in_use + 20}). Nothing was changed."
        )
    return size


class _Rush:
    """The buyers' threads, their barrier and their outcomes (one Outcome per buyer once done)."""

    def __init__(self, app, event_id: int, seat_ids: list[int], buyer_ids: list[int], on_done, timeout: float):
        self.app, self.event_id, self.seat_ids, self.buyer_ids = app, event_id, seat_ids, buyer_ids
        self.on_done, self.timeout = on_done, timeout
        self.deadline = time.perf_counter() + timeout
        self.barrier = threading.Barrier(len(buyer_ids) + 1)
        self.outcomes: list[Outcome | None] = [None] * len(buyer_ids)
        self.began: list[float | None] = [None] * len(buyer_ids)
        self.reporting = threading.Lock()
        self.given_up = False

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.perf_counter())

    def buyer(self, index: int) -> None:
        with self.app.app_context():
            try:
                self.outcomes[index] = self._released_buyer(index)
            finally:
                db.session.remove()
                with self.reporting:
                    if self.on_done and not self.given_up:
                        self.on_done()

    def _released_buyer(self, index: int) -> Outcome:
        try:
            self.barrier.wait(timeout=self.remaining())
        except threading.BrokenBarrierError:
            return Outcome("error", detail=f"not released: the buyers were not all ready within {self.timeout:g} s")
        began = self.began[index] = time.perf_counter()
        connected = None
        try:
            db.session.connection()  # waits for one of the pool's connections, like a web request
            connected = time.perf_counter()
            user, event = db.session.get(User, self.buyer_ids[index]), db.session.get(Event, self.event_id)
            booking.hold(user, event, self.seat_ids)
            return Outcome("ok", began, connected, time.perf_counter())
        except CLEAN_REFUSALS as refusal:
            kind, detail = "conflict", refusal.code
        except DomainError as error:
            kind, detail = "error", f"{error.code}: {error.message}"
        except Exception as error:  # counted and shown: the simulation exists to find these
            kind, detail = "error", repr(error)
        return Outcome(kind, began, connected, time.perf_counter(), detail)

    def run(self) -> SimulationResult:
        threads = [threading.Thread(target=self.buyer, args=(i,), daemon=True) for i in range(len(self.buyer_ids))]
        for thread in threads:
            thread.start()
        # If it breaks, the buyers waiting at the barrier record that they were never released.
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=self.remaining())
        started = time.perf_counter()
        for thread in threads:
            thread.join(self.remaining())
        with self.reporting:
            self.given_up = True
            stopped, final = time.perf_counter(), list(self.outcomes)
        result = SimulationResult(users=len(final), seat_labels=[])
        for index, outcome in enumerate(final):
            result.count(outcome or Outcome("busy", self.began[index]), stopped, self.timeout)
        result.wall_s = max(0.0, result.last_end - started)
        return result


def run(
    app, event_id: int, seat_ids: list[int], buyer_ids: list[int], on_done=None, timeout: float = 60.0
) -> SimulationResult:
    """Release len(buyer_ids) threads at once, each holding the seats through booking.hold().

    Buyers still waiting `timeout` seconds after the start are given up on and counted as errors.
    """
    return _Rush(app, event_id, seat_ids, buyer_ids, on_done, timeout).run()
