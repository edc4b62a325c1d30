"""Waiting lists for sold-out events (entries, offers, a per-event switch) and hold extensions

waitlists: one row per event, its switch and the row the offer step locks last;
waitlist_entries: the queue (one open entry per buyer per event, a generated column keeps it so);
hold_extensions: the one extension a checkout's hold may get.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 02:22:52.513403

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "waitlists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("is_open", sa.Boolean(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_waitlists_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlists")),
        sa.UniqueConstraint("event_id", name=op.f("uq_waitlists_event_id")),
    )
    op.create_table(
        "hold_extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Integer(), nullable=False),
        sa.Column("extended_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_hold_extensions_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hold_extensions")),
        sa.UniqueConstraint("order_id", name=op.f("uq_hold_extensions_order_id")),
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("party_size", sa.Integer(), nullable=False),
        sa.Column("price_category_id", sa.Integer(), nullable=True),
        sa.Column("together", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offer_order_id", sa.Integer(), nullable=True),
        sa.Column("offered_at", sa.DateTime(), nullable=True),
        sa.Column("offer_expires_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column(
            "open_event_id",
            sa.Integer(),
            sa.Computed("CASE WHEN status IN ('waiting', 'offered') THEN event_id END", persisted=True),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('waiting', 'offered', 'accepted', 'declined', 'expired', 'skipped', 'left', 'closed')",
            name=op.f("ck_waitlist_entries_status"),
        ),
        sa.CheckConstraint("party_size >= 1", name=op.f("ck_waitlist_entries_party_size_positive")),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_waitlist_entries_event_id_events")),
        sa.ForeignKeyConstraint(
            ["offer_order_id"], ["orders.id"], name=op.f("fk_waitlist_entries_offer_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["price_category_id"],
            ["price_categories.id"],
            name=op.f("fk_waitlist_entries_price_category_id_price_categories"),
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_waitlist_entries_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
        sa.UniqueConstraint("user_id", "open_event_id", name="uq_waitlist_entries_one_open_per_event"),
    )
    with op.batch_alter_table("waitlist_entries", schema=None) as batch_op:
        batch_op.create_index("ix_waitlist_entries_event_id_status", ["event_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_waitlist_entries_offer_order_id"), ["offer_order_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_waitlist_entries_price_category_id"), ["price_category_id"], unique=False)


def downgrade():
    # Dropping a table drops its indexes; dropping them first fails on MariaDB (foreign keys use them).
    op.drop_table("waitlist_entries")
    op.drop_table("hold_extensions")
    op.drop_table("waitlists")
