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
