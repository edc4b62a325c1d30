"""The one owner of transactions and the lock helpers: what they refuse, and a COMMIT whose outcome
is unknown."""

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import Event, User
from app.services import locking, transactions
from app.services.transactions import CommitOutcomeUnknown, run_unit_of_work


def lost_connection(statement="COMMIT"):
    error = OperationalError(statement, {}, Exception(2013, "Lost connection to server during query"))
    error.connection_invalidated = True
    return error


@pytest.mark.parametrize(
    "lock",
    [
        lambda event_id: locking.lock_event(event_id, shared=True),
        lambda event_id: locking.get_locked_event(event_id),
        lambda event_id: locking.lock_event_seats(event_id),
        lambda event_id: locking.lock_seats([1, 2]),
        lambda event_id: locking.lock_seats_with_prices(db.session.connection(), event_id, [1]),
        lambda event_id: locking.lock_orders(),
    ],
)
def test_lock_helpers_refuse_to_run_outside_a_unit_of_work(factory, lock):
    event = factory.event(rows=1, columns=2)
    with pytest.raises(locking.LockOutsideUnitOfWork, match="outside a unit of work"):
        lock(event.id)
    run_unit_of_work(lambda: lock(event.id))  # inside one, the same call runs


def test_units_of_work_do_not_nest(factory):
    with pytest.raises(RuntimeError, match="cannot be nested"):
        run_unit_of_work(lambda: run_unit_of_work(lambda: None))
    assert not locking.in_unit_of_work()


def test_a_commit_whose_outcome_is_unknown_is_reported_not_run_again(factory, monkeypatch):
    user = factory.user()
    user_id, runs = user.id, []
    real_commit = db.session.commit

    def commit_then_lose_the_connection():
        real_commit()  # the server committed...
        raise lost_connection()  # ...but the answer never came back

    def rename():
        runs.append(1)
        db.session.get(User, user_id).name = f"renamed {len(runs)}"

    monkeypatch.setattr(db.session, "commit", commit_then_lose_the_connection)
    with pytest.raises(CommitOutcomeUnknown) as refused:
        run_unit_of_work(rename)
    assert runs == [1] and refused.value.status == 503 and "Reload the page" in refused.value.message
    monkeypatch.undo()
    db.session.expire_all()
    assert db.session.get(User, user_id).name == "renamed 1"


def test_a_connection_lost_while_the_work_runs_is_run_again(factory, monkeypatch):
    event = factory.event(rows=1, columns=1)
    event_id, runs = event.id, []
    monkeypatch.setattr(transactions.time, "sleep", lambda seconds: None)

    def work():
        runs.append(1)
        if len(runs) == 1:
            raise lost_connection("SELECT")
        db.session.execute(sa.update(Event).where(Event.id == event_id).values(venue="Moved"))

    run_unit_of_work(work)
    assert len(runs) == 2
    db.session.expire_all()
    assert db.session.get(Event, event_id).venue == "Moved"
