"""users.email compares exactly: stored lower-cased, binary collation on MySQL/MariaDB

Under utf8mb4_general_ci "vîctim@example.com" found the account of "victim@example.com" (and
could not be registered beside it), while SQLite compares exactly: the address typed is now the
address matched, on both. Downgrading fails if two addresses that the old collation takes for
one have been registered since.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String))


def lower_case_stored_emails(connection):
    """Every address as the app looks it up (stripped, lower-cased); refuses to merge two accounts."""
    owners = {}
    for user_id, email in connection.execute(sa.select(users.c.id, users.c.email).order_by(users.c.id)):
        normal = email.strip().lower()
        if normal in owners:
            raise RuntimeError(
                f"users {owners[normal]} and {user_id} both have the address {normal!r} once lower-cased: "
                "rename one of them, then run the upgrade again"
            )
        owners[normal] = user_id
        if normal != email:
            connection.execute(sa.update(users).where(users.c.id == user_id).values(email=normal))


def is_mysql():
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def upgrade():
    lower_case_stored_emails(op.get_bind())
    if is_mysql():  # SQLite already compares strings byte for byte
        op.alter_column(
            "users", "email", existing_type=sa.String(255), existing_nullable=False,
            type_=mysql.VARCHAR(255, collation="utf8mb4_bin"),
        )


def downgrade():
    if is_mysql():  # back to the table's default collation
        op.alter_column(
            "users", "email", existing_type=mysql.VARCHAR(255, collation="utf8mb4_bin"), existing_nullable=False,
            type_=sa.String(255),
        )
