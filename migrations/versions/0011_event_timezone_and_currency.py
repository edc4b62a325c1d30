"""events.timezone (IANA name) and events.currency (ISO 4217)

Existing events keep what they meant before: their dates were entered and shown in UTC and their
prices were euros, so they get 'UTC' and 'EUR'. New events take DEFAULT_TIMEZONE and
DEFAULT_CURRENCY from the configuration.

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-07 02:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC"))
        batch_op.add_column(sa.Column("currency", sa.String(length=3), nullable=False, server_default="EUR"))


def downgrade():
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_column("currency")
        batch_op.drop_column("timezone")
