"""The migrations build the schema the models describe, on SQLite and MariaDB alike."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from app.extensions import db
from config import BASE_DIR


def test_migrations_are_at_head(app):
    script = ScriptDirectory(str(BASE_DIR / "migrations"))
    with db.engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == script.get_current_head()


def test_models_and_migrations_agree(app):
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, db.metadata)
    assert differences == []


def test_every_foreign_key_is_indexed(app):
    inspector = sa.inspect(db.engine)
    for table in inspector.get_table_names():
        indexed = {tuple(index["column_names"][:1]) for index in inspector.get_indexes(table)}
        indexed |= {tuple(unique["column_names"][:1]) for unique in inspector.get_unique_constraints(table)}
        for foreign_key in inspector.get_foreign_keys(table):
            assert tuple(foreign_key["constrained_columns"][:1]) in indexed, (table, foreign_key)


def test_downgrade_and_upgrade_again(app):
    downgrade(revision="base")
    assert "seats" not in sa.inspect(db.engine).get_table_names()
    upgrade()
    assert {"users", "events", "price_categories", "seats", "orders", "bookings", "payments"} <= set(
        sa.inspect(db.engine).get_table_names()
    )
