"""Seat changes, announced once their transaction has committed (never before).

Services call `mark_changed(event_id, seat_ids)` inside the unit of work that changes seats. Just
before the commit the seats' new states are read on the same connection (unless the caller passed
them as `state`, a code every one of its seats now has) (so announcing needs no
second connection, which a busy pool may not have); after the commit every registered listener
gets `(event_id, [[seat_id, state_code], ...], event_changed)` once per event, where event_changed
says the event itself changed too (its status, size or prices). After a rollback nothing is said.
"""

import logging
from collections import defaultdict

import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app

from app.extensions import db

log = logging.getLogger(__name__)
_APP_KEY = "stagepass_seat_changes"
_CHANGED = "stagepass_seat_changes"
_EVENTS = "stagepass_changed_events"
_KNOWN = "stagepass_seat_known_states"
_STATES = "stagepass_seat_states"


def init_app(app) -> None:
    """Follow this app's sessions: describe changed seats before each commit, announce them after."""
    app.extensions.setdefault(_APP_KEY, {"listeners": [], "describe": None})
    for name, hook in (("before_commit", _describe_changes), ("after_commit", _announce), ("after_rollback", _forget)):
        if not sa.event.contains(so.Session, name, hook):
            sa.event.listen(so.Session, name, hook)


def on_seats_changed(app, listener):
    """Register `listener(event_id, seat_states, event_changed)`, called after each commit that changed seats."""
    listeners = app.extensions[_APP_KEY]["listeners"]
    if listener not in listeners:
        listeners.append(listener)
    return listener


def describe_with(app, describe):
    """Set `describe(connection, seat_ids) -> [[seat_id, code], ...]`, used just before commit."""
    app.extensions[_APP_KEY]["describe"] = describe


def _wiring() -> dict:
    return current_app.extensions.get(_APP_KEY) or {"listeners": [], "describe": None}


def mark_changed(event_id: int, seat_ids, session=None, state: str | None = None) -> None:
    """Note that seats of the event changed (no seat ids: the event itself changed).

    `state` is the code all of these seats now have, when the caller knows it for certain (it set
    it under a lock in this transaction): it spares a read before commit on the hot path.
    """
    session = session or db.session()
    seat_ids = list(seat_ids)
    session.info.setdefault(_CHANGED, defaultdict(set))[event_id].update(seat_ids)
    if not seat_ids:
        session.info.setdefault(_EVENTS, set()).add(event_id)
    known = session.info.setdefault(_KNOWN, {})
    for seat_id in seat_ids:
        if state is None:
            known.pop(seat_id, None)
        else:
            known[seat_id] = state


def _describe_changes(session):
    changes = session.info.get(_CHANGED)
    describe = _wiring()["describe"] if changes else None
    if describe is None:
        return
    known = session.info.get(_KNOWN, {})
    session.info[_STATES] = {
        event_id: _describe_seats(session, describe, sorted(seat_ids), known) for event_id, seat_ids in changes.items()
    }


def _describe_seats(session, describe, seat_ids, known) -> list[list]:
    unknown = [seat_id for seat_id in seat_ids if seat_id not in known]
    read = {}
    if unknown:
        session.flush()
        read = dict(describe(session.connection(), unknown))
    read.update((seat_id, known[seat_id]) for seat_id in seat_ids if seat_id in known)
    return [[seat_id, read[seat_id]] for seat_id in seat_ids if seat_id in read]


def _announce(session):
    session.info.pop(_KNOWN, None)
    changes = session.info.pop(_CHANGED, None)
    described = session.info.pop(_STATES, {})
    changed_events = session.info.pop(_EVENTS, set())
    if not changes:
        return
    listeners = list(_wiring()["listeners"])
    for event_id in changes:
        for listener in listeners:
            try:
                listener(event_id, described.get(event_id, []), event_id in changed_events)
            except Exception:  # an announcement must never undo or fail a committed sale
                log.exception("seat change listener %s failed for event %s", listener, event_id)


def _forget(session):
    for key in (_CHANGED, _KNOWN, _STATES, _EVENTS):
        session.info.pop(key, None)
