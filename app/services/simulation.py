"""An on-sale rush in one process: N buyers, N threads, one barrier, the same hold() the web uses."""

from __future__ import annotations

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
from app.services.transactions import run_unit_of_work

SIM_EMAIL = "sim-{:05d}@simulate.stagepass.test"
CLEAN_REFUSALS = (booking.SeatUnavailable, booking.CheckoutAlreadyOpen, booking.SeatsBusy)


@dataclass
class SimulationResult:
    users: int
    seat_labels: list[str]
    succeeded: int = 0
    conflicts: int = 0
    errors: int = 0
    wall_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    timed_out: int = 0
    live_bookings_per_seat: dict[str, int] = field(default_factory=dict)

    @property
    def database_consistent(self) -> bool:
        expected = 1 if self.succeeded == 1 else None
        counts = self.live_bookings_per_seat.values()
        return all(count <= 1 for count in counts) and (expected is None or all(c == 1 for c in counts))

    @property
    def passed(self) -> bool:
        return self.succeeded == 1 and self.errors == 0 and self.database_consistent

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return 0.0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]

    def summary(self) -> dict:
        return {
            "users": self.users,
            "succeeded": self.succeeded,
            "conflicts": self.conflicts,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "p50_ms": round(statistics.median(self.latencies_ms), 1) if self.latencies_ms else 0.0,
            "p95_ms": round(self.percentile(0.95), 1),
            "max_ms": round(max(self.latencies_ms), 1) if self.latencies_ms else 0.0,
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


def connection_shortage(needed: int) -> str | None:
    """Why MySQL/MariaDB cannot open `needed` more connections at once now, or None if it can."""
    if db.engine.dialect.name not in ("mysql", "mariadb"):
        return None
    limit = db.session.scalar(sa.text("SELECT @@GLOBAL.max_connections"))
    in_use = int(db.session.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Threads_connected'")).one()[1])
    db.session.rollback()
    if needed <= limit - in_use:
        return None
    return (
        f"{needed} buyers need {needed} database connections at once, but the server's max_connections "
        f"is {limit} with {in_use} open already. Raise it for the run (as a database admin: "
        f"SET GLOBAL max_connections={needed + in_use + 20}) or choose fewer --users. Nothing was changed."
    )


def run(
    app, event_id: int, seat_ids: list[int], buyer_ids: list[int], on_done=None, timeout: float = 60.0
) -> SimulationResult:
    """Release len(buyer_ids) threads at once, each holding the seats through booking.hold().

    Buyers still waiting `timeout` seconds after the start are given up on and counted as errors.
    """
    count = len(buyer_ids)
    deadline = time.perf_counter() + timeout
    barrier = threading.Barrier(count + 1)
    # Each buyer stores one tuple (kind, began, ended, detail) when it is done; None: still busy.
    outcomes: list = [None] * count
    began: list = [None] * count
    reporting = threading.Lock()
    given_up = [False]

    def report_done():
        with reporting:
            if on_done and not given_up[0]:
                on_done()

    def buyer(index: int):
        with app.app_context():
            try:
                try:
                    barrier.wait(timeout=max(0.0, deadline - time.perf_counter()))
                except threading.BrokenBarrierError:
                    outcomes[index] = (
                        "error",
                        None,
                        None,
                        f"not released: the buyers were not all ready within {timeout:g} s",
                    )
                    return
                begin = began[index] = time.perf_counter()
                try:
                    booking.hold(db.session.get(User, buyer_ids[index]), db.session.get(Event, event_id), seat_ids)
                    outcome = ("ok", None)
                except CLEAN_REFUSALS as refusal:
                    outcome = ("conflict", refusal.code)
                except DomainError as error:
                    outcome = ("error", f"{error.code}: {error.message}")
                except Exception as error:  # counted and shown: the simulation exists to find these
                    outcome = ("error", repr(error))
                outcomes[index] = (outcome[0], begin, time.perf_counter(), outcome[1])
            finally:
                db.session.remove()
                report_done()

    threads = [threading.Thread(target=buyer, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(timeout=max(0.0, deadline - time.perf_counter()))
    except threading.BrokenBarrierError:
        pass  # the buyers waiting at the barrier record that they were never released
    started = time.perf_counter()
    for thread in threads:
        thread.join(max(0.0, deadline - time.perf_counter()))
    with reporting:
        given_up[0] = True
        stopped, final = time.perf_counter(), list(outcomes)

    result = SimulationResult(users=count, seat_labels=[])
    ends = []
    for index, outcome in enumerate(final):
        if outcome is None:
            result.timed_out += 1
            outcome = ("error", began[index], None, f"did not finish within the --timeout of {timeout:g} s")
        kind, begin, end, detail = outcome
        if begin is not None:
            ends.append(end or stopped)
            result.latencies_ms.append(((end or stopped) - begin) * 1000)
        if kind == "ok":
            result.succeeded += 1
        elif kind == "conflict":
            result.conflicts += 1
        else:
            result.errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(detail)
    result.wall_s = max(ends) - started if ends else 0.0
    return result
