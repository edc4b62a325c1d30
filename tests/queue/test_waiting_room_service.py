"""The waiting room's rules, against the test run's real Redis: the draw is fair, admissions
cannot be forged, lent or kept past their deadline, and the queue moves as it should."""

import statistics
import time
from collections import Counter
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from app.extensions import db, get_redis
from app.models import Seat, SeatStatus, WaitingRoomMode, utcnow
from app.services import waiting_room


def buyer(user_id):
    return SimpleNamespace(id=user_id, is_authenticated=True)


@pytest.fixture
def room_event(factory, redis_client):
    """A published event whose on-sale is 10 minutes away: its room is in the early window."""
    event = factory.event(rows=5, columns=10)
    event.sales_start_at = utcnow().replace(microsecond=0) + timedelta(minutes=10)
    event.waiting_room = WaitingRoomMode.ON_SALE
    db.session.commit()
    return event


def ranks(event):
    """The queue's scores by buyer id."""
    keys = waiting_room.Keys(event.id)
    return {int(member): int(score) for member, score in get_redis().zrange(keys.queue, 0, -1, withscores=True)}


def test_the_early_draw_gives_no_edge_to_who_came_first(room_event, app):
    """Over many simulated on-sales, each early arrival's place is uniform, whatever its arrival rank."""
    arrivals, rounds = 8, 400
    early = room_event.sales_start_at - timedelta(minutes=5)
    places = {arrival: [] for arrival in range(arrivals)}
    first_places = Counter()
    for _ in range(rounds):
        waiting_room.forget(room_event.id)
        for arrival in range(arrivals):
            place = waiting_room.join(buyer(arrival + 1), room_event, ip=f"10.0.0.{arrival}", now=early)
            assert place.state == "early"
        assert waiting_room.shuffle_early_arrivals(room_event) == arrivals
        order = sorted(ranks(room_event).items(), key=lambda item: item[1])
        for place, (user_id, _score) in enumerate(order):
            places[user_id - 1].append(place)
        first_places[order[0][0] - 1] += 1
    # Mean place of every arrival rank is (arrivals - 1) / 2 = 3.5; the standard error of a mean
    # of 400 uniform places 0..7 is 2.29 / 20 = 0.11, so 0.5 is more than four of them.
    for arrival, seen in places.items():
        assert abs(statistics.mean(seen) - (arrivals - 1) / 2) < 0.5, (arrival, statistics.mean(seen))
    # Who comes first: chi-square against uniform, 7 degrees of freedom; 24.3 is p = 0.001.
    expected = rounds / arrivals
    chi_square = sum((first_places[arrival] - expected) ** 2 / expected for arrival in range(arrivals))
    assert chi_square < 24.3, first_places
    # The first to arrive is not favoured: it came first in about 1/8 of the draws.
    assert first_places[0] < rounds / arrivals * 1.6


def test_later_arrivals_queue_in_arrival_order_behind_the_early_ones(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    early = room_event.sales_start_at - timedelta(minutes=1)
    after = room_event.sales_start_at + timedelta(seconds=1)
    for user_id in (1, 2, 3):
        waiting_room.join(buyer(user_id), room_event, ip="10.0.0.1", now=early)
    late = [waiting_room.join(buyer(user_id), room_event, ip="10.0.0.2", now=after) for user_id in (10, 11, 12)]
    assert [place.position for place in late] == [4, 5, 6]
    assert {waiting_room.place_of(user_id, room_event, after).position for user_id in (1, 2, 3)} == {1, 2, 3}


def test_one_place_per_account_and_rejoining_keeps_it(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0  # nobody is admitted: the places stay put
    after = room_event.sales_start_at + timedelta(seconds=1)
    waiting_room.advance(room_event, now=after, force=True)
    first = waiting_room.join(buyer(1), room_event, ip="10.0.0.1", now=after)
    waiting_room.join(buyer(2), room_event, ip="10.0.0.1", now=after)
    again = waiting_room.join(buyer(1), room_event, ip="10.9.9.9", now=after + timedelta(seconds=5))
    assert first.position == again.position == 1
    assert waiting_room.stats(room_event, after).waiting == 2


def test_places_per_ip_are_capped(room_event, app):
    app.config["WAITING_ROOM_PLACES_PER_IP"] = 2
    early = room_event.sales_start_at - timedelta(minutes=1)
    waiting_room.join(buyer(1), room_event, ip="10.0.0.1", now=early)
    waiting_room.join(buyer(2), room_event, ip="10.0.0.1", now=early)
    with pytest.raises(waiting_room.TooManyPlaces):
        waiting_room.join(buyer(3), room_event, ip="10.0.0.1", now=early)
    assert waiting_room.join(buyer(3), room_event, ip="10.0.0.2", now=early).state == "early"


def gather_early(event, count):
    """Buyers 1..count arrive in the early window: the moment just after the on-sale."""
    early = event.sales_start_at - timedelta(minutes=1)
    for user_id in range(1, count + 1):
        waiting_room.join(buyer(user_id), event, ip=f"10.0.{user_id}.1", now=early)
    return event.sales_start_at + timedelta(seconds=1)


def admitted_after_the_draw(event, arrivals, count):
    """Buyers 1..arrivals arrive early, are drawn, and the first `count` admitted: the moment just
    after the on-sale, and the ids admitted."""
    start = gather_early(event, arrivals)
    waiting_room.shuffle_early_arrivals(event)
    return start, waiting_room.admit(event, count, now=start)


# --- admissions ---------------------------------------------------------------------------------


def test_admission_tokens_cannot_be_forged_lent_moved_or_kept(room_event, app):
    now = utcnow()
    later = waiting_room._now_ms(now) + 60_000
    token = waiting_room.admission_token(7, room_event.id, later)
    assert waiting_room.has_admission(buyer(7), room_event, now, token)
    # Forged: the payload changed, or signed with another key.
    body, signature = token.rsplit(".", 1)
    assert not waiting_room.has_admission(buyer(7), room_event, now, body + "." + signature[::-1])
    other_key = waiting_room.URLSafeSerializer("not-our-secret", salt=waiting_room.TOKEN_SALT)
    assert not waiting_room.has_admission(
        buyer(8), room_event, now, other_key.dumps({"u": 8, "e": room_event.id, "d": later})
    )
    # Lent to another buyer, or used for another event.
    assert not waiting_room.has_admission(buyer(8), room_event, now, token)
    other_event = SimpleNamespace(id=room_event.id + 1)
    assert not waiting_room.has_admission(buyer(7), other_event, now, token)
    # Kept past its deadline.
    assert not waiting_room.has_admission(buyer(7), room_event, now + timedelta(seconds=61), token)
    # Nonsense.
    assert not waiting_room.has_admission(buyer(7), room_event, now, "not-a-token")
    assert not waiting_room.has_admission(buyer(7), room_event, now, "")


def test_an_admission_not_used_in_time_lapses_and_the_next_buyers_move_up(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 0
    start = room_event.sales_start_at + timedelta(seconds=1)
    waiting_room.advance(room_event, now=start, force=True)
    for user_id in (1, 2, 3):
        waiting_room.join(buyer(user_id), room_event, ip="10.0.0.1", now=start)
    assert waiting_room.admit(room_event, 1, now=start) == [1]
    assert waiting_room.place_of(1, room_event, start).state == "admitted"
    assert waiting_room.place_of(2, room_event, start).position == 1
    lapsed = start + timedelta(seconds=app.config["WAITING_ROOM_ADMISSION_SECONDS"] + 1)
    assert waiting_room.place_of(1, room_event, lapsed).state == "none"
    assert waiting_room.stats(room_event, lapsed).shopping == 0
    assert waiting_room.admit(room_event, 1, now=lapsed) == [2]


def test_the_automatic_rate_admits_no_more_than_the_free_seats(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 1000
    start = gather_early(room_event, 80)
    admitted = waiting_room.advance(room_event, now=start, force=True)
    assert len(admitted) == 50  # the event has 50 seats
    assert waiting_room.stats(room_event, start).waiting == 30


@pytest.mark.parametrize("behind", [False, True])
def test_the_automatic_rate_ramps_up_from_the_first_seconds_of_holds_unless_the_server_is_behind(
    room_event, app, behind
):
    """Holds measured over the two seconds since admissions began count as two seconds' worth, not
    as a tenth of a full window: the room moves as fast as buyers hold from the start. A server
    whose look-ups come back late admits nobody new while buyers are still shopping."""
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 10
    app.config["WAITING_ROOM_SHOPPING_SECONDS"] = 10
    app.config["WAITING_ROOM_BEHIND_MS"] = 60_000
    start, first = admitted_after_the_draw(room_event, 80, 10)
    keys, second, client = waiting_room.Keys(room_event.id), int(time.time()), get_redis()
    client.set(keys.admitting_since, second - 2)  # the first ten held within two seconds
    client.set(f"{keys.holds}:{second - 1}", 10)
    client.zrem(keys.shopping, *first[:8])  # two are still choosing
    app.config["WAITING_ROOM_BEHIND_MS"] = -1 if behind else 60_000
    admitted = waiting_room.advance(room_event, now=start + timedelta(seconds=2), force=True)
    if behind:
        assert admitted == []
    else:
        # 10 holds in 2 s (3 s if the clock ticked meanwhile): 5 (3.3) a second, so a step of half
        # a second admits twice that many: 5 (4). Over a whole window it would have been 1.
        assert len(admitted) in (4, 5)


def test_a_step_admits_about_twice_the_holds_of_its_time(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 50
    app.config["WAITING_ROOM_BEHIND_MS"] = 60_000
    start = gather_early(room_event, 200)
    first = waiting_room.advance(room_event, now=start, force=True)
    assert len(first) == 5  # nothing measured yet: a tenth of MIN_ACTIVE a step
    keys, second, client = waiting_room.Keys(room_event.id), int(time.time()), get_redis()
    client.set(keys.admitting_since, second - 10)
    client.set(f"{keys.holds}:{second - 1}", 400)  # 40 holds a second over the last 10 s
    client.zrem(keys.shopping, *first)  # all of them held
    admitted = waiting_room.advance(room_event, now=start + timedelta(seconds=1), force=True)
    assert len(admitted) == 40  # 2 x 40 holds a second x half a second, not the 400 they serve in 10 s


def test_the_room_admits_nobody_new_while_the_holds_of_the_last_seconds_were_slow(room_event, app):
    """Slow holds mean the servers are behind: more shoppers would wait longer for the same CPU,
    in whatever order it serves them. Once the holds are quick again, the room admits again."""
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 10
    app.config["WAITING_ROOM_BEHIND_MS"] = 60_000
    app.config["WAITING_ROOM_SLOW_HOLD_MS"] = 200
    start, first = admitted_after_the_draw(room_event, 40, 10)
    keys, client = waiting_room.Keys(room_event.id), get_redis()
    response = SimpleNamespace(set_cookie=lambda *args, **kwargs: None)
    for user_id, took in zip(first[:5], (0.9, 0.7, 0.8, 0.6, 1.2), strict=True):
        waiting_room.note_hold(response, user_id, room_event.id, start + timedelta(minutes=5), took)
    assert waiting_room.recent_holds(client, keys).average_ms > 200
    assert waiting_room.advance(room_event, now=start + timedelta(seconds=1), force=True) == []
    for second in range(int(time.time()) - waiting_room.SLOW_HOLD_WINDOW_SECONDS, int(time.time()) + 1):
        client.delete(f"{keys.hold_ms}:{second}", f"{keys.holds}:{second}")
    for user_id in first[5:]:
        waiting_room.note_hold(response, user_id, room_event.id, start + timedelta(minutes=5), 0.02)
    assert waiting_room.recent_holds(client, keys).average_ms == pytest.approx(20)
    assert waiting_room.advance(room_event, now=start + timedelta(seconds=2), force=True) != []


def test_a_sold_out_room_admits_nobody_and_pages_behind_the_seats_left_poll_rarely(room_event, app):
    app.config["WAITING_ROOM_MIN_ACTIVE"] = 1000
    start = gather_early(room_event, 80)
    assert len(waiting_room.advance(room_event, now=start, force=True)) == 50  # one admission a seat
    last_in_queue = int(get_redis().zrange(waiting_room.Keys(room_event.id).queue, -1, -1)[0])
    behind = waiting_room.place_of(last_in_queue, room_event, start)
    assert behind.seats_for_queue == 0
    assert behind.to_json(start)["poll_after_ms"] == waiting_room.POLL_BEYOND_SEATS_MS
    assert not behind.to_json(start)["listen"]
    db.session.execute(sa.update(Seat).where(Seat.event_id == room_event.id).values(status=SeatStatus.BOOKED))
    db.session.commit()
    lapsed = start + timedelta(seconds=app.config["WAITING_ROOM_ADMISSION_SECONDS"] + 1)
    assert waiting_room.advance(room_event, now=lapsed, force=True) == []
    assert waiting_room.stats(room_event, lapsed).waiting == 30


def test_pages_near_the_head_poll_soon_and_far_back_rarely_and_only_those_within_reach_listen():
    near = waiting_room.Place("queued", ahead=20, estimated_wait_seconds=2, seats_for_queue=300)
    middle = waiting_room.Place("queued", ahead=200, estimated_wait_seconds=30, seats_for_queue=300)
    beyond = waiting_room.Place("queued", ahead=400, estimated_wait_seconds=60, seats_for_queue=300)
    sold_out = waiting_room.Place("sold_out", ahead=20, seats_for_queue=0, seats_may_return=True)
    assert near.poll_after_ms(None) == waiting_room.POLL_MIN_MS
    assert middle.poll_after_ms(None) == 10_000
    assert beyond.poll_after_ms(None) == waiting_room.POLL_BEYOND_SEATS_MS
    assert [place.to_json(utcnow())["listen"] for place in (near, middle, beyond, sold_out)] == [
        True,
        True,
        False,
        False,
    ]


def test_a_fixed_rate_and_a_pause(room_event, app):
    room_event.waiting_room_rate = 60  # one a second
    db.session.commit()
    start = gather_early(room_event, 20)
    assert waiting_room.advance(room_event, now=start, force=True) == []  # the bucket starts empty
    assert len(waiting_room.advance(room_event, now=start + timedelta(seconds=5), force=True)) == 5
    waiting_room.set_paused(room_event, True)
    assert waiting_room.advance(room_event, now=start + timedelta(seconds=15), force=True) == []
    assert waiting_room.stats(room_event, start).paused
    waiting_room.set_paused(room_event, False)
    assert len(waiting_room.advance(room_event, now=start + timedelta(seconds=18), force=True)) == 3


def test_the_room_opens_by_itself_once_the_queue_stays_empty(room_event, app):
    app.config["WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS"] = 30
    start = room_event.sales_start_at + timedelta(seconds=1)
    waiting_room.join(buyer(1), room_event, ip="10.0.0.1", now=start - timedelta(minutes=1))
    waiting_room.advance(room_event, now=start, force=True)  # admits buyer 1: the queue is empty
    assert waiting_room.is_active(room_event, start + timedelta(seconds=10))
    waiting_room.advance(room_event, now=start + timedelta(seconds=10), force=True)
    assert waiting_room.is_active(room_event, start + timedelta(seconds=20))
    waiting_room.advance(room_event, now=start + timedelta(seconds=31), force=True)
    assert not waiting_room.is_active(room_event, start + timedelta(seconds=32))


def test_an_always_on_room_never_opens_and_an_off_room_never_closes(room_event, app):
    app.config["WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS"] = 0
    later = room_event.sales_start_at + timedelta(minutes=5)
    room_event.waiting_room = WaitingRoomMode.ALWAYS
    db.session.commit()
    waiting_room.advance(room_event, now=later, force=True)
    assert waiting_room.is_active(room_event, later)
    room_event.waiting_room = WaitingRoomMode.OFF
    assert not waiting_room.is_active(room_event, later)
    room_event.waiting_room = WaitingRoomMode.ON_SALE
    assert not waiting_room.is_active(room_event, room_event.sales_start_at - timedelta(minutes=20))


def test_the_room_tells_the_live_hubs_whom_it_admits_and_when_it_opens(room_event, app):
    from app.services import live

    app.config["WAITING_ROOM_OPEN_AFTER_EMPTY_SECONDS"] = 0
    hub = live.Hub(app.config["REDIS_URL"])
    turns = {user_id: hub.await_turn(room_event.id, user_id) for user_id in (1, 2)}
    elsewhere = hub.await_turn(0, 1)
    try:
        assert hub.connected.wait(3)
        start, [first] = admitted_after_the_draw(room_event, len(turns), 1)
        [second] = {1, 2} - {first}
        assert isinstance(turns[first].get(timeout=3), live.RoomNews)
        time.sleep(0.2)
        assert turns[second].messages.empty() and elsewhere.messages.empty()
        assert waiting_room.admit(room_event, 1, now=start) == [second]  # the queue is empty: the room opens
        assert isinstance(turns[second].get(timeout=3), live.RoomNews)
        assert isinstance(turns[first].get(timeout=3), live.RoomNews)  # the opening wakes every stream
        assert elsewhere.messages.empty()
    finally:
        hub.stop()
        for user_id, inbox in turns.items():
            hub.stop_awaiting(room_event.id, user_id, inbox)
        hub.stop_awaiting(0, 1, elsewhere)
    assert hub.turns == {}
