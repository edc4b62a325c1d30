"""The virtual waiting room in front of an event's on-sale, with its state in Redis.

While a room is active, holding and checking out need an admission: a token signed with the
app's secret (itsdangerous), bound to the buyer and the event, valid until its deadline. The
queue is Redis data under stagepass:wr:<event id>:..., changed only by Lua scripts, so any app
server serves any buyer:

- `early`: a set of the buyers who arrived in the early window (the minutes before the on-sale).
  At the on-sale moment they are put in the queue in an order drawn with `secrets` (cryptographic
  randomness): arriving early gives no edge over arriving on time.
- `queue`: a sorted set, buyer id -> score. Shuffled early arrivals get scores 0..n-1; later ones
  LATE_OFFSET + an arrival counter, so they queue behind them in arrival order.
- `shopping`: a sorted set of admitted buyers, buyer id -> deadline (ms). A buyer who has not
  held by then loses the admission, and the next ones move up.
- counters (admitted, held), a pause flag, the per-IP place counts, the fixed rate's allowance,
  and `opened`: set once the queue stayed empty long enough for the room to open by itself.

Admissions are advanced lazily by requests (at most one step per event per TICK_MS, whoever gets
the step lock) and by a periodic job. Redis is never needed to sell correctly: when it cannot be
reached the room counts as inactive (holds go straight to the database, which decides every
seat); what is lost with Redis is only the order of the queue (see README).
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, request, url_for
from flask_babel import gettext as _
from itsdangerous import BadSignature, URLSafeSerializer

from app.extensions import db, redis_call, run_script
from app.models import Event, EventStatus, Seat, SeatStatus, WaitingRoomMode, utcnow
from app.services import catalog, live, waitlist
from app.services.catalog import SaleState
from app.services.errors import DomainError

LATE_OFFSET = 10**12  # larger than any early crowd, far below 2**53 (scores are doubles)
TICK_MS = 500
TOKEN_SALT = "stagepass-waiting-room-admission"
THROUGHPUT_WINDOW_SECONDS = 10
SLOW_HOLD_WINDOW_SECONDS = 2  # the holds whose time says whether the servers are behind: this second's and the last two
RATE_WINDOW_SECONDS = 30
HOLD_GRACE_SECONDS = 60  # an admission outlives the hold a little, so checkout right at the end works
SALE_STATE_TTL_SECONDS = 10  # the room's steps renew it while anyone waits
POLL_MIN_MS, POLL_MAX_MS = 1000, 15000
# Behind more buyers than there are seats left, a place moves only when someone ahead gives up.
POLL_BEYOND_SEATS_MS = 30000
SEATS_FOR_QUEUE_TTL_MS = 10000  # a room nobody steps forgets its count rather than keep an old one


class QueueRequired(DomainError):
    code = "queue_required"


class TooManyPlaces(DomainError):
    code = "too_many_places"
    status = 429


# --- keys and scripts ------------------------------------------------------------------------


@dataclass
class Keys:
    event_id: int
    prefix: str = field(init=False)

    def __post_init__(self):
        self.prefix = f"stagepass:wr:{self.event_id}:"

    def __getattr__(self, name):
        return self.prefix + name


# One visit to the room, one round trip: 'open' if the room opened by itself; 'step' (and nothing
# else) if this visit took the step lock and must move the queue first; else the buyer's place,
# joining the queue if ARGV[6] = 1. A queued place comes with the admissions of the last
# ARGV[11] seconds, the seconds they span, and the seats left for the queue at the last step
# (-1: unknown), for the wait and the next poll.
# KEYS: queue early shopping seq shuffled ips user_ips opened step admits admitting_since seats_for_queue
#       sale_state (the room's notice that nothing is left to sell, '' if there is none)
# ARGV: user now_ms ip ip_cap late_offset join may_open may_step tick_ms second rate_window
_VISIT = """
local now = tonumber(ARGV[2])
if ARGV[7] == '1' and redis.call('EXISTS', KEYS[8]) == 1 then return {'open'} end
if ARGV[8] == '1' and redis.call('SET', KEYS[9], ARGV[2], 'NX', 'PX', ARGV[9]) then return {'step'} end
local function place()
  local deadline = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if deadline and tonumber(deadline) > now then return {'admitted', deadline} end
  local rank = redis.call('ZRANK', KEYS[1], ARGV[1])
  if rank then return {'queued', rank, redis.call('ZCARD', KEYS[1])} end
  if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return {'early', 0, redis.call('SCARD', KEYS[2])} end
  return nil
end
local function join()
  local cap = tonumber(ARGV[4])
  if cap > 0 then
    if redis.call('HINCRBY', KEYS[6], ARGV[3], 1) > cap then
      redis.call('HINCRBY', KEYS[6], ARGV[3], -1)
      return {'ip_cap'}
    end
    redis.call('HSET', KEYS[7], ARGV[1], ARGV[3])
  end
  if redis.call('EXISTS', KEYS[5]) == 1 then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[5]) + redis.call('INCR', KEYS[4]), ARGV[1])
    return {'queued', redis.call('ZRANK', KEYS[1], ARGV[1]), redis.call('ZCARD', KEYS[1])}
  end
  redis.call('SADD', KEYS[2], ARGV[1])
  return {'early', 0, redis.call('SCARD', KEYS[2])}
end
local found = place()
if not found then
  if ARGV[6] ~= '1' then return {'none'} end
  found = join()
end
if found[1] == 'queued' then
  local second, window, admitted = tonumber(ARGV[10]), tonumber(ARGV[11]), 0
  for offset = 0, window - 1 do
    admitted = admitted + tonumber(redis.call('GET', KEYS[10] .. ':' .. (second - offset)) or 0)
  end
  local since = redis.call('GET', KEYS[11])
  local span = window
  if since then span = math.min(window, math.max(1, second - tonumber(since) + 1)) end
  found[4], found[5], found[6] = admitted, span, tonumber(redis.call('GET', KEYS[12]) or -1)
  found[7] = redis.call('GET', KEYS[13]) or ''
end
return found
"""

# The drawn order of the early arrivals; anyone who joined the early set while it was drawn
# (clocks of app servers differ by a little) queues behind them in arrival order.
# KEYS: queue early shuffled seq  ARGV: late_offset user...
_APPLY_SHUFFLE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
for i = 2, #ARGV do
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then redis.call('ZADD', KEYS[1], i - 2, ARGV[i]) end
end
for _, user in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + redis.call('INCR', KEYS[4]), user)
end
redis.call('DEL', KEYS[2])
redis.call('SET', KEYS[3], '1')
return #ARGV - 1
"""

# Drop lapsed admissions, admit up to ARGV[2] buyers from the head of the queue, and note when
# the queue became empty (opening the room once it stayed so for ARGV[5] ms, if ARGV[6] = 1).
# admitting_since: the second (Unix time) this stretch of admissions began, gone after a minute
# without any, so a new rush measures its rates from its own start. The buyers admitted, and the
# room opening, are published on the room's channel (ARGV[8]): their pages' streams learn at once.
# KEYS: queue early shopping admitted ips user_ips admits_bucket empty_since opened admitting_since
# ARGV: now_ms count deadline_ms bucket_ttl open_after_ms may_open second channel event_id
_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local admitted = {}
local count = tonumber(ARGV[2])
if count > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], count)
  for i = 1, #popped, 2 do
    local user = popped[i]
    redis.call('ZADD', KEYS[3], tonumber(ARGV[3]), user)
    local ip = redis.call('HGET', KEYS[6], user)
    if ip then
      redis.call('HINCRBY', KEYS[5], ip, -1)
      redis.call('HDEL', KEYS[6], user)
    end
    admitted[#admitted + 1] = user
  end
  if #admitted > 0 then
    redis.call('INCRBY', KEYS[4], #admitted)
    redis.call('INCRBY', KEYS[7], #admitted)
    redis.call('EXPIRE', KEYS[7], tonumber(ARGV[4]))
    redis.call('SET', KEYS[10], ARGV[7], 'NX')
    redis.call('EXPIRE', KEYS[10], tonumber(ARGV[4]))
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SET', KEYS[8], now, 'NX')
  local since = tonumber(redis.call('GET', KEYS[8]))
  if ARGV[6] == '1' and now - since >= tonumber(ARGV[5]) and redis.call('SET', KEYS[9], '1', 'NX') then
    redis.call('PUBLISH', ARGV[8], '{"event_id":' .. ARGV[9] .. ',"opened":true}')
  end
else
  redis.call('DEL', KEYS[8])
end
if #admitted > 0 then
  redis.call('PUBLISH', ARGV[8], '{"event_id":' .. ARGV[9] .. ',"users":[' .. table.concat(admitted, ',') .. ']}')
end
return admitted
"""


def _now_ms(now: datetime) -> int:
    return int((now - datetime(1970, 1, 1)).total_seconds() * 1000)


def _config(name: str):
    return current_app.config[name]


# --- is the room in the way? -----------------------------------------------------------------


def early_window_start(event: Event) -> datetime | None:
    """When buyers may start to gather for the on-sale (None without an on-sale time)."""
    if event.sales_start_at is None:
        return None
    return event.sales_start_at - timedelta(minutes=_config("WAITING_ROOM_EARLY_MINUTES"))


def configured_active(event: Event, now: datetime) -> bool:
    """Whether the event's settings put a room in front of it now (before asking Redis)."""
    if event.status != EventStatus.PUBLISHED or event.is_deleted or event.date <= now or event.sales_ended_at:
        return False
    if event.waiting_room == WaitingRoomMode.ALWAYS:
        return True
    if event.waiting_room != WaitingRoomMode.ON_SALE or event.sales_start_at is None:
        return False
    return now >= early_window_start(event)


def is_active(event: Event, now: datetime | None = None) -> bool:
    """Whether buyers must pass the room now. Without Redis it is never active: the database sells."""
    now = now or utcnow()
    if not configured_active(event, now):
        return False
    keys = Keys(event.id)
    opened = redis_call(lambda client: client.exists(keys.opened), default=None)
    if opened is None:
        return False
    return not (opened and event.waiting_room == WaitingRoomMode.ON_SALE)


def room_url(event: Event) -> str:
    return url_for("booking.waiting_room", event_id=event.id)


# --- admissions ------------------------------------------------------------------------------


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def admission_token(user_id: int, event_id: int, deadline_ms: int) -> str:
    """A signed admission for this buyer and event, valid until deadline_ms (Unix ms)."""
    claims = {"u": user_id, "e": event_id, "d": int(deadline_ms)}
    if generation := room_generation(event_id):
        claims["g"] = generation
    return _serializer().dumps(claims)


def cookie_name(event_id: int) -> str:
    return f"stagepass_admission_{event_id}"


def has_admission(user, event: Event, now: datetime, token: str | None = None) -> bool:
    """Whether the token (by default the request's cookie) admits this buyer to this event now."""
    token = token if token is not None else request.cookies.get(cookie_name(event.id))
    if not token or user is None or not getattr(user, "is_authenticated", False):
        return False
    try:
        claims = _serializer().loads(token)
    except BadSignature:
        return False
    return (
        isinstance(claims, dict)
        and claims.get("u") == user.id
        and claims.get("e") == event.id
        and isinstance(claims.get("d"), int)
        and claims["d"] > _now_ms(now)
        and claims.get("g", "") == room_generation(event.id)
    )


def require_admission(user, event: Event, now: datetime | None = None) -> None:
    """Refuse (409 queue_required, with the room's URL) while the room is active and the buyer has no admission."""
    now = now or utcnow()
    if has_admission(user, event, now) or not is_active(event, now):  # the signed cookie first: no Redis
        return
    raise QueueRequired(
        _("Many people are buying tickets for this event: please wait for your turn in the waiting room."),
        waiting_room_url=room_url(event),
    )


def set_admission_cookie(response, user_id: int, event_id: int, deadline_ms: int) -> None:
    response.set_cookie(
        cookie_name(event_id),
        admission_token(user_id, event_id, deadline_ms),
        max_age=max(1, (deadline_ms - _now_ms(utcnow())) // 1000 + 60),
        httponly=True,
        samesite="Lax",
        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )


def note_hold(response, user_id: int, event_id: int, hold_expires_at: datetime, took_seconds: float) -> None:
    """After a hold that took `took_seconds` in this server: count it and its time (throughput,
    load), free the buyer's admission slot, and admit them until the hold ends."""
    keys = Keys(event_id)
    second = int(time.time())

    def record(client):
        pipe = client.pipeline()
        pipe.zrem(keys.shopping, user_id)
        pipe.incr(keys.held)
        pipe.incr(f"{keys.holds}:{second}")
        pipe.expire(f"{keys.holds}:{second}", THROUGHPUT_WINDOW_SECONDS * 3)
        pipe.incrbyfloat(f"{keys.hold_ms}:{second}", round(took_seconds * 1000, 1))
        pipe.expire(f"{keys.hold_ms}:{second}", THROUGHPUT_WINDOW_SECONDS * 3)
        pipe.execute()

    redis_call(record)
    deadline = _now_ms(hold_expires_at) + HOLD_GRACE_SECONDS * 1000
    set_admission_cookie(response, user_id, event_id, deadline)


# --- joining and waiting ---------------------------------------------------------------------


@dataclass
class Place:
    """Where a buyer stands: 'open' (no room now), 'early', 'queued', 'admitted', 'ip_cap', 'none',
    or 'sold_out' (queued, but nothing is left to sell: `seats_may_return` while some are only held)."""

    state: str
    position: int | None = None
    ahead: int | None = None
    waiting: int | None = None
    deadline_ms: int | None = None
    estimated_wait_seconds: int | None = None
    sales_start_at: datetime | None = None
    seats_may_return: bool | None = None
    waitlist_open: bool | None = None
    seats_for_queue: int | None = None

    def poll_after_ms(self, starts_in_ms: int | None) -> int:
        """When the page should ask again: soon near the head of the queue, rarely far back, so
        thousands of waiting pages do not cost more than the sale itself."""
        if self.state == "early" and starts_in_ms is not None:
            return max(POLL_MIN_MS, min(starts_in_ms, POLL_MAX_MS))
        if self.state == "sold_out":
            # Nothing moves until seats come back, and thousands wait: in the 5,000-buyer rush a
            # 5 s poll here cost more than the sale itself.
            return POLL_MAX_MS if self.seats_may_return else POLL_BEYOND_SEATS_MS
        if self.state != "queued" or not self.ahead:
            return POLL_MIN_MS
        if self.beyond_the_seats:
            return POLL_BEYOND_SEATS_MS
        if self.estimated_wait_seconds is not None:
            guess = self.estimated_wait_seconds * 1000 // 3
        else:
            guess = self.ahead * 20
        return max(POLL_MIN_MS, min(int(guess), POLL_MAX_MS))

    @property
    def beyond_the_seats(self) -> bool:
        """Queued behind more buyers than there are seats left: only someone ahead giving up moves it."""
        return self.state == "queued" and self.seats_for_queue is not None and self.ahead >= self.seats_for_queue

    @property
    def worth_a_stream(self) -> bool:
        """Whether the page should listen on the room's stream, which tells it of its admission at
        once: while queued within reach of a seat. Far back, or sold out, polling rarely costs the
        servers less than thousands of streams opened in the arrival burst."""
        return self.state == "queued" and not self.beyond_the_seats

    def to_json(self, now: datetime) -> dict:
        starts_in = None
        if self.sales_start_at is not None:
            starts_in = max(0, int((self.sales_start_at - now).total_seconds() * 1000))
        return {
            "poll_after_ms": self.poll_after_ms(starts_in),
            "listen": self.worth_a_stream,
            "state": self.state,
            "position": self.position,
            "ahead": self.ahead,
            "waiting": self.waiting,
            "estimated_wait_seconds": self.estimated_wait_seconds,
            "sales_start_in_ms": starts_in,
            "seats_may_return": self.seats_may_return,
            "waitlist_open": self.waitlist_open,
        }


def _queued_place(reply, event: Event) -> Place:
    ahead, waiting, admitted_lately, span, seats_for_queue = (int(value) for value in reply[1:6])
    if event.waiting_room_rate:
        rate = event.waiting_room_rate / 60
    else:
        rate = admitted_lately / span if admitted_lately else None
    place = Place(
        "queued",
        position=ahead + 1,
        ahead=ahead,
        waiting=waiting,
        estimated_wait_seconds=math.ceil(ahead / rate) if rate else None,
        seats_for_queue=seats_for_queue if seats_for_queue >= 0 else None,
    )
    notice = _parsed_sale_notice(reply[6])
    if notice is None:
        return place
    state, waitlist_open = notice
    return replace(
        place, state="sold_out", seats_may_return=state == SaleState.TAKEN_FOR_NOW, waitlist_open=waitlist_open
    )


def _place_from(reply, event: Event) -> Place:
    state = reply[0].decode() if isinstance(reply[0], bytes) else reply[0]
    if state == "admitted":
        return Place("admitted", deadline_ms=int(float(reply[1])))
    if state == "queued":
        return _queued_place(reply, event)
    if state == "early":
        return Place("early", waiting=int(reply[2]), sales_start_at=event.sales_start_at)
    return Place(state)


def _visit(user_id: int, event: Event, now: datetime, *, ip: str | None = None, may_step: bool = True) -> Place:
    """The buyer's place (taking one if `ip` is given), moving the queue first when this visit's turn."""
    keys = Keys(event.id)

    def run(client):
        return run_script(
            client,
            _VISIT,
            13,
            *(keys.queue, keys.early, keys.shopping, keys.seq, keys.shuffled, keys.ips, keys.user_ips),
            *(keys.opened, keys.step, keys.admits, keys.admitting_since, keys.seats_for_queue, keys.sale_state),
            user_id,
            _now_ms(now),
            ip or "",
            _config("WAITING_ROOM_PLACES_PER_IP"),
            LATE_OFFSET,
            "1" if ip is not None else "0",
            "1" if event.waiting_room == WaitingRoomMode.ON_SALE else "0",
            "1" if may_step and not event.sells_later(now) else "0",
            TICK_MS,
            int(time.time()),
            RATE_WINDOW_SECONDS,
        )

    reply = redis_call(run)
    if reply is None:
        return Place("open")
    place = _place_from(reply, event)
    if place.state == "step":  # this visit's turn to move the queue: the draw, admissions; then look again
        advance(event, now=now, force=True)
        return _visit(user_id, event, now, ip=ip, may_step=False)
    return place


def join(user, event: Event, *, ip: str, now: datetime | None = None) -> Place:
    """Take (or keep) the buyer's place in the room, let the queue move on, and say where they stand."""
    now = now or utcnow()
    if not configured_active(event, now):
        return Place("open")
    place = _visit(user.id, event, now, ip=ip)
    if place.state == "ip_cap":
        raise TooManyPlaces(_("Too many places in this waiting room were taken from your network. Please try later."))
    return place


def place_of(user_id: int, event: Event, now: datetime | None = None) -> Place:
    """Where the buyer stands, without joining (the live stream asks this every few seconds)."""
    now = now or utcnow()
    if not configured_active(event, now):
        return Place("open")
    return _visit(user_id, event, now)


# --- moving the queue ------------------------------------------------------------------------


def shuffle_early_arrivals(event: Event) -> int:
    """Put the early arrivals in the queue in a random order (once; a no-op afterwards): how many."""
    keys = Keys(event.id)

    def run(client):
        if client.exists(keys.shuffled):
            return 0
        members = [int(member) for member in client.smembers(keys.early)]
        secrets.SystemRandom().shuffle(members)
        return run_script(
            client, _APPLY_SHUFFLE, 4, keys.queue, keys.early, keys.shuffled, keys.seq, LATE_OFFSET, *members
        )

    return redis_call(run, default=0)


def free_seats(event_id: int, now: datetime) -> int:
    """Seats nobody holds or bought right now (an expired hold counts as free)."""
    free = sa.or_(
        Seat.status == SeatStatus.AVAILABLE,
        sa.and_(Seat.status == SeatStatus.RESERVED, Seat.reservation_expires_at <= now),
    )
    return db.session.scalar(sa.select(sa.func.count(Seat.id)).where(Seat.event_id == event_id, free)) or 0


@dataclass(frozen=True)
class RecentHolds:
    per_second: float
    average_ms: float | None  # how long the holds of the last seconds took in the app servers


def recent_holds(client, keys: Keys) -> RecentHolds:
    """Holds made through the room per second, over the last THROUGHPUT_WINDOW_SECONDS whole
    seconds or, early in a stretch of admissions, over the seconds since it began (a rush ramps
    up within seconds instead of waiting for a full window of measurements); and how long the
    holds of this second and the last SLOW_HOLD_WINDOW_SECONDS took on average."""
    second = int(time.time())
    pipe = client.pipeline()
    pipe.get(keys.admitting_since)
    pipe.mget([f"{keys.holds}:{second - offset}" for offset in range(0, THROUGHPUT_WINDOW_SECONDS + 1)])
    pipe.mget([f"{keys.hold_ms}:{second - offset}" for offset in range(0, SLOW_HOLD_WINDOW_SECONDS + 1)])
    since, counts, times = pipe.execute()
    counts = [int(count or 0) for count in counts]
    timed = sum(counts[: SLOW_HOLD_WINDOW_SECONDS + 1])
    average_ms = sum(float(ms or 0) for ms in times) / timed if timed else None
    span = THROUGHPUT_WINDOW_SECONDS if since is None else min(THROUGHPUT_WINDOW_SECONDS, second - int(since))
    per_second = sum(counts[1:]) / span if span > 0 else 0.0
    return RecentHolds(per_second, average_ms)


def _fixed_rate_admissions(client, event: Event, keys: Keys, now_ms: int) -> int:
    """A token bucket: the event's rate per minute, at most one minute's worth saved up."""
    last = client.getset(keys.last_tick, now_ms)
    allowance = float(client.get(keys.allowance) or 0)
    if last is not None:
        allowance += event.waiting_room_rate * max(0, now_ms - int(last)) / 60000
    allowance = min(allowance, float(event.waiting_room_rate))
    count = int(allowance)
    client.set(keys.allowance, allowance - count)
    return count


def _automatic_admissions(client, event: Event, keys: Keys, now: datetime) -> int:
    """Keep as many buyers choosing seats as the measured holds per second serve in
    SHOPPING_SECONDS (at least MIN_ACTIVE), never more than the free seats: a sold-out event
    admits nobody. While the servers are behind (the holds of the last seconds were slow, or this
    server's own look-ups here came back late), nobody new unless nobody is shopping: more buyers
    would only wait longer for the same CPU, in an order the CPU decides rather than the queue,
    and so would new arrivals for their place. Notes the seats left for the queue, by which
    far-back pages poll rarely."""
    began = time.perf_counter()
    shopping = client.zcount(keys.shopping, _now_ms(now), "+inf")
    free = free_seats(event.id, now)
    holds = recent_holds(client, keys)
    served = math.ceil(holds.per_second * _config("WAITING_ROOM_SHOPPING_SECONDS"))
    wanted = max(_config("WAITING_ROOM_MIN_ACTIVE"), served)
    slow_holds = holds.average_ms is not None and holds.average_ms > _config("WAITING_ROOM_SLOW_HOLD_MS")
    if slow_holds or (time.perf_counter() - began) * 1000 > _config("WAITING_ROOM_BEHIND_MS"):
        wanted = min(wanted, max(shopping, _fewest_per_step()))
    count = min(max(0, min(free, wanted) - shopping), _step_allowance(holds.per_second))
    client.set(keys.seats_for_queue, max(0, free - shopping - count), px=SEATS_FOR_QUEUE_TTL_MS)
    return count


def _step_allowance(holds_per_second: float) -> int:
    """A step admits at most ADMISSIONS_PER_HOLD times the holds of one step's time, and at least
    a tenth of MIN_ACTIVE (so a new rush fills MIN_ACTIVE within 5 s): the queue moves about as
    fast as buyers leave it by holding, and can grow from there. Admitted all at once, a hundred
    buyers without a moment's thought between the map and the hold queue for the same CPU and buy
    in whatever order it serves them (measured in the 5,000-buyer rush: fairness 0.89 and holds
    at 2 s p95, against 0.98 and 1 s with this; the 50 admitted at once at the on-sale, in the
    arrival burst, made most of the holds over 1 s left)."""
    per_step = _config("WAITING_ROOM_ADMISSIONS_PER_HOLD") * holds_per_second * TICK_MS / 1000
    return max(_fewest_per_step(), math.ceil(per_step))


def _fewest_per_step() -> int:
    """A tenth of MIN_ACTIVE: what a step may always admit, the servers behind or holds unmeasured."""
    return math.ceil(_config("WAITING_ROOM_MIN_ACTIVE") / 10)


def _how_many_to_admit(client, event: Event, keys: Keys, now: datetime) -> int:
    now_ms = _now_ms(now)
    if client.exists(keys.paused):
        client.set(keys.last_tick, now_ms)  # a pause saves up no admissions for later
        client.set(keys.allowance, 0)
        return 0
    if event.waiting_room_rate:
        return _fixed_rate_admissions(client, event, keys, now_ms)
    return _automatic_admissions(client, event, keys, now)


def advance(event: Event, *, now: datetime | None = None, force: bool = False) -> list[int]:
    """One step of the room (at most one per TICK_MS per event unless forced): draw the early
    arrivals at the on-sale, admit the next buyers, open the room once the queue stayed empty."""
    now = now or utcnow()
    if event.sells_later(now):
        return []
    keys = Keys(event.id)

    def run(client):
        if not force and not client.set(keys.step, _now_ms(now), nx=True, px=TICK_MS):
            return []
        shuffle_early_arrivals(event)
        if note_sale_state(event, now) != SaleState.AVAILABLE:
            return admit(event, 0, now=now)  # lapsed admissions still go; nobody new comes in for nothing
        return admit(event, _how_many_to_admit(client, event, keys, now), now=now)

    return redis_call(run, default=[]) or []


def admit(event: Event, count: int, *, now: datetime | None = None) -> list[int]:
    """Admit the next `count` buyers of the queue now (dropping lapsed admissions first): their ids."""
    now = now or utcnow()
    keys = Keys(event.id)
    now_ms = _now_ms(now)

    def run(client):
        second = int(time.time())
        admitted = run_script(
            client,
            _ADMIT,
            10,
            keys.queue,
            keys.early,
            keys.shopping,
            keys.admitted,
            keys.ips,
            keys.user_ips,
            f"{keys.admits}:{second}",
            keys.empty_since,
            keys.opened,
            keys.admitting_since,
            now_ms,
            max(0, int(count)),
            now_ms + _config("WAITING_ROOM_ADMISSION_SECONDS") * 1000,
            60,
            _config("WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS") * 1000,
            "1" if event.waiting_room == WaitingRoomMode.ON_SALE else "0",
            second,
            live.room_channel(event.id),
            event.id,
        )
        return [int(user) for user in admitted]

    return redis_call(run, default=[]) or []


def forget(event_id: int) -> None:
    """Drop every trace of an event's room from Redis (tests; a moved on-sale calls `restart`)."""

    def run(client):
        names = list(client.scan_iter(match=f"{Keys(event_id).prefix}*", count=1000))
        if names:
            client.delete(*names)

    redis_call(run)


# --- nothing left to sell ---------------------------------------------------------------------


def note_sale_state(event: Event, now: datetime) -> str:
    """Count what is left to sell and tell the room (Redis, so waiting pages read no database): the state."""
    state = catalog.sale_state(event, now)
    keys = Keys(event.id)
    if state == SaleState.AVAILABLE:
        redis_call(lambda client: client.delete(keys.sale_state))
    else:
        # With no seat free in any category, the list takes entries whenever it is open and sales are.
        waitlist_open = event.is_on_sale(now) and waitlist.is_list_open(event.id)
        notice = f"{state} {int(waitlist_open)}"
        redis_call(lambda client: client.set(keys.sale_state, notice, ex=SALE_STATE_TTL_SECONDS))
    return state


def _parsed_sale_notice(notice) -> tuple[str, bool] | None:
    """The room's last word on what is left to sell, when nothing is: (state, waiting list open)."""
    if not notice:
        return None
    state, waitlist_open = (notice.decode() if isinstance(notice, bytes) else notice).split()
    return state, waitlist_open == "1"


def nothing_to_sell(event: Event) -> bool:
    """Whether the room found no seat to sell at its last step (sold out, or all held for now)."""
    notice = redis_call(lambda client: client.get(Keys(event.id).sale_state))
    return _parsed_sale_notice(notice) is not None


# --- a new on-sale -----------------------------------------------------------------------------


def on_sale_move_restarts_room(before: datetime | None, after: datetime | None, now: datetime) -> bool:
    """Whether moving the on-sale from `before` to `after` makes a new on-sale with a room of its own.

    Postponed (or newly scheduled on an event already selling): the old room's opening, draw and
    admissions belong to a sale that did not happen, so they go. Brought forward but still ahead:
    nothing was sold yet and the early arrivals stay in the draw. Opened now: the crowd waiting
    is drawn at once, as at any on-sale.
    """
    return after is not None and after > now and (before is None or after > before)


def room_generation(event_id: int) -> str:
    """The room's generation: '' until its first restart, then a new random word at each."""
    value = redis_call(lambda client: client.get(Keys(event_id).generation))
    if not value:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def restart(event_id: int) -> bool:
    """Start the room afresh: forget its queue, draw, opening and admissions, and refuse the admission
    cookies already handed out (they name the old generation). False if Redis could not be reached."""
    keys = Keys(event_id)

    def run(client):
        names = list(client.scan_iter(match=f"{keys.prefix}*", count=1000))
        pipe = client.pipeline(transaction=True)
        if names:
            pipe.delete(*names)
        pipe.set(keys.generation, secrets.token_urlsafe(9))
        pipe.execute()
        return True

    return bool(redis_call(run, default=False))


def advance_active_rooms(now: datetime | None = None) -> int:
    """Step every room that is configured active now (the periodic job): how many rooms."""
    now = now or utcnow()
    candidates = db.session.scalars(
        sa.select(Event).where(
            Event.status == EventStatus.PUBLISHED,
            Event.waiting_room != WaitingRoomMode.OFF,
            Event.date > now,
            Event.sales_ended_at.is_(None),
        )
    )
    stepped = 0
    for event in candidates:
        if is_active(event, now):
            advance(event, now=now, force=True)
            stepped += 1
    return stepped


# --- admin -----------------------------------------------------------------------------------


@dataclass
class RoomStats:
    active: bool
    reachable: bool
    paused: bool
    waiting: int = 0
    shopping: int = 0
    admitted: int = 0
    held: int = 0


def stats(event: Event, now: datetime | None = None) -> RoomStats:
    """Queue length, buyers admitted now and in all, and holds made through the room."""
    now = now or utcnow()
    keys = Keys(event.id)

    def read(client):
        pipe = client.pipeline()
        pipe.zcard(keys.queue)
        pipe.scard(keys.early)
        pipe.zcount(keys.shopping, _now_ms(now), "+inf")
        pipe.get(keys.admitted)
        pipe.get(keys.held)
        pipe.exists(keys.paused)
        return pipe.execute()

    values = redis_call(read)
    if values is None:
        return RoomStats(active=False, reachable=False, paused=False)
    queued, early, shopping, admitted, held, paused = values
    return RoomStats(
        active=is_active(event, now),
        reachable=True,
        paused=bool(paused),
        waiting=queued + early,
        shopping=shopping,
        admitted=int(admitted or 0),
        held=int(held or 0),
    )


class RoomUnavailable(DomainError):
    code = "waiting_room_unavailable"
    status = 503


def set_paused(event: Event, paused: bool) -> None:
    """Stop admitting buyers (they keep their places) or start again."""
    keys = Keys(event.id)
    done = redis_call(lambda client: client.set(keys.paused, "1") if paused else client.delete(keys.paused) or True)
    if done is None:
        raise RoomUnavailable(_("The waiting room's storage (Redis) cannot be reached; nothing was changed."))
