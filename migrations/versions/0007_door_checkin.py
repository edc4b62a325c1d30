"""The door: a staff role (users.is_staff) and the conflicts of offline check-ins (checkin_conflicts)

Revision ID: 0007
Revises: 0011
Create Date: 2026-12-07 02:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.add_column(sa.Column("is_staff", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "checkin_conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("door", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("scanned_at", sa.DateTime(), nullable=False),
        sa.Column("result", sa.String(length=24), nullable=False),
        sa.Column("first_checked_in_at", sa.DateTime(), nullable=True),
        sa.Column("first_door", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_checkin_conflicts_event_id_events")),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_checkin_conflicts_ticket_id_tickets")),
        sa.ForeignKeyConstraint(["staff_id"], ["users.id"], name=op.f("fk_checkin_conflicts_staff_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_conflicts")),
    )
    with op.batch_alter_table("checkin_conflicts") as batch_op:
        batch_op.create_index(batch_op.f("ix_checkin_conflicts_event_id"), ["event_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkin_conflicts_ticket_id"), ["ticket_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkin_conflicts_staff_id"), ["staff_id"], unique=False)


def downgrade():
    op.drop_table("checkin_conflicts")
    with op.batch_alter_table("users") as batch_op:
        batch_op.drop_column("is_staff")
