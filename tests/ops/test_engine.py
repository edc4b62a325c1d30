"""How the app's MySQL/MariaDB connections go back to the pool."""

import pymysql
import pytest
import sqlalchemy as sa

from app.extensions import db


@pytest.fixture
def rollbacks(monkeypatch):
    """Every ROLLBACK the driver sends, counted."""
    sent = []
    original = pymysql.connections.Connection.rollback

    def counted(connection):
        sent.append(connection)
        return original(connection)

    monkeypatch.setattr(pymysql.connections.Connection, "rollback", counted)
    return sent


@pytest.mark.mariadb
def test_a_committed_connection_goes_back_without_a_rollback(app, rollbacks):
    with db.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
        connection.commit()
    assert rollbacks == []


@pytest.mark.mariadb
def test_a_connection_with_an_open_transaction_is_rolled_back_on_return(app, rollbacks):
    raw = db.engine.raw_connection()  # the pool's reset alone stands between it and the next user
    driver = raw.dbapi_connection
    with raw.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE pool_reset_probe (id INT) ENGINE=InnoDB")
        cursor.execute("INSERT INTO pool_reset_probe VALUES (1)")
    raw.close()
    assert rollbacks == [driver]
    with driver.cursor() as cursor:  # idle in the pool now; look at it behind the pool's back
        cursor.execute("SELECT COUNT(*) FROM pool_reset_probe")
        assert cursor.fetchone() == (0,)
        cursor.execute("DROP TEMPORARY TABLE pool_reset_probe")
    driver.rollback()  # leave it as the pool would


@pytest.mark.mariadb
def test_a_request_that_finds_no_free_connection_in_time_is_told_to_come_back(app, client, monkeypatch):
    """Overload, not a bug: every pooled connection in use past the pool's timeout is a 503 with
    Retry-After and a reason, as a page and as JSON, not a 500."""
    pool = db.engine.pool
    monkeypatch.setattr(pool, "_timeout", 0.2)
    taken = [db.engine.connect() for _ in range(pool.size() + pool._max_overflow - pool.checkedout())]
    try:
        db.session.remove()
        page = client.get("/")
        answer = client.get("/api/events/1/seats")
    finally:
        for connection in taken:
            connection.close()
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert "We are very busy right now" in page.get_data(as_text=True)
    assert answer.status_code == 503 and answer.get_json()["code"] == "busy"


def test_a_database_out_of_reach_is_a_503_with_its_reason(client, monkeypatch):
    from app.services import catalog

    def unreachable():
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("(2003) Can't connect to MySQL server"))

    monkeypatch.setattr(catalog, "upcoming_events", unreachable)
    page = client.get("/", headers={"Accept": "application/json"})
    assert page.status_code == 503 and page.headers["Retry-After"] == "5"
    assert page.get_json()["code"] == "database_unavailable"
