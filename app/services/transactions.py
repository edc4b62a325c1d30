"""The one owner of transactions: units of work that commit, retried when the locks collided.

Every service write runs inside `run_unit_of_work`; views, forms and error handlers never commit or
roll back. A deadlock, a lock-wait timeout or a connection lost while the work ran is retried (the
server rolled everything back). A connection lost during COMMIT itself is not: the server may have
committed, so running the work again could do it twice; it is reported as CommitOutcomeUnknown.
"""

import logging
import random
import time

from flask import current_app
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm.exc import StaleDataError

from app.extensions import db
from app.services.errors import DomainError
from app.services.locking import UNIT_OF_WORK

log = logging.getLogger(__name__)

MYSQL_DEADLOCK = 1213
MYSQL_LOCK_WAIT_TIMEOUT = 1205


class Conflict(Exception):
    """Rows changed under a unit of work between its read and its write: run it again."""


class SeatsBusy(DomainError):
    """So many people are booking right now that we could not get your seats. Please try again."""

    code = "busy"
    status = 503


class CommitOutcomeUnknown(DomainError):
    code = "commit_outcome_unknown"
    status = 503
    default_message = (
        "We lost contact with the database while saving, so we cannot tell whether your change was saved. "
        "Reload the page to check before trying again."
    )


MYSQL_CONNECTION_LOST = (2006, 2013, 1927)  # server gone away, lost during query, killed


# A lock-wait timeout has already waited DB_LOCK_WAIT_SECONDS for a lock someone holds for long:
# it is tried once more, not SEAT_LOCK_RETRIES times, so the wait stays bounded by about twice that.
LOCK_WAIT_ATTEMPTS = 2


def _mysql_error_code(error: DBAPIError):
    args = getattr(getattr(error, "orig", None), "args", ())
    return args[0] if args else None


def is_lock_conflict(error: DBAPIError) -> bool:
    """Safe to run the whole unit again: a deadlock or lock-wait timeout (MySQL/MariaDB), a busy
    SQLite file, or a connection that died mid-transaction (the server rolled it back)."""
    if getattr(error, "connection_invalidated", False):
        return True
    if _mysql_error_code(error) in (MYSQL_DEADLOCK, MYSQL_LOCK_WAIT_TIMEOUT, *MYSQL_CONNECTION_LOST):
        return True
    return "database is locked" in str(getattr(error, "orig", None))


def _begin_writing() -> None:
    """SQLite has no row locks: take its write lock up front, so the unit of work reads only what
    no one else can change before it commits (MySQL/MariaDB lock rows with FOR UPDATE instead)."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def run_unit_of_work(work, *, attempts=None):
    """Run `work()` and commit; on a lock conflict roll back and run it again, a bounded number of times.

    Domain errors roll back and propagate at once. After the last attempt (or the second lock-wait
    timeout) a conflict becomes SeatsBusy. A commit whose outcome is unknown raises
    CommitOutcomeUnknown and is never run again.
    """
    if db.session.info.get(UNIT_OF_WORK):
        raise RuntimeError("run_unit_of_work cannot be nested: one unit of work, one commit.")
    attempts = attempts or current_app.config["SEAT_LOCK_RETRIES"]
    db.session.info[UNIT_OF_WORK] = True
    try:
        return _run_attempts(work, attempts)
    finally:
        db.session.info.pop(UNIT_OF_WORK, None)


def _commit() -> None:
    try:
        db.session.commit()
    except OperationalError as error:
        db.session.rollback()
        if getattr(error, "connection_invalidated", False) or _mysql_error_code(error) in MYSQL_CONNECTION_LOST:
            log.error("connection lost during COMMIT; outcome unknown, not retried: %s", error.orig)
            raise CommitOutcomeUnknown() from error
        raise


def _run_attempts(work, attempts: int):
    lock_waits = 0
    for attempt in range(1, attempts + 1):
        try:
            _begin_writing()
            result = work()
            _commit()
            return result
        except OperationalError as error:
            db.session.rollback()
            if not is_lock_conflict(error):
                raise
            log.info("lock conflict (attempt %d/%d): %s", attempt, attempts, error.orig)
            lock_waits += _mysql_error_code(error) == MYSQL_LOCK_WAIT_TIMEOUT
            if attempt == attempts or lock_waits == LOCK_WAIT_ATTEMPTS:
                raise SeatsBusy() from error
            # Back off a little, with jitter, so the colliding transactions do not meet again.
            time.sleep(random.uniform(0, 0.02 * attempt))
        except (Conflict, StaleDataError) as error:
            db.session.rollback()
            log.info("stale read (attempt %d/%d): %s", attempt, attempts, error)
            if attempt == attempts:
                raise SeatsBusy() from error
        except BaseException:
            db.session.rollback()
            raise


def end_read() -> None:
    """End the session's read-only transaction (nothing to keep), so no snapshot or lock outlives
    the read: before a slow step (SMTP, a provider), between batches, or after a failed read."""
    db.session.rollback()
