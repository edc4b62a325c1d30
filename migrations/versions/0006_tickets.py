"""tickets: one per confirmed seat, with its code, signing key id, revocation and check-in

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-07 02:30:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0004'
branch_labels = None
depends_on = None

# Codes compare byte for byte on MySQL/MariaDB too (SQLite already does).
CODE_TYPE = sa.String(length=16).with_variant(mysql.VARCHAR(16, collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade():
    op.create_table('tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('seat_id', sa.Integer(), nullable=False),
    sa.Column('code', CODE_TYPE, nullable=False),
    sa.Column('kid', sa.String(length=16), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_reason', sa.String(length=255), nullable=True),
    sa.Column('checked_in_at', sa.DateTime(), nullable=True),
    sa.Column('checked_in_door', sa.String(length=64), nullable=True),
    sa.Column('checked_in_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_tickets_booking_id_bookings')),
    sa.ForeignKeyConstraint(['checked_in_by_id'], ['users.id'], name=op.f('fk_tickets_checked_in_by_id_users')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_tickets_event_id_events')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_tickets_order_id_orders')),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_tickets_seat_id_seats')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tickets')),
    sa.UniqueConstraint('booking_id', name=op.f('uq_tickets_booking_id')),
    sa.UniqueConstraint('code', name=op.f('uq_tickets_code'))
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tickets_checked_in_by_id'), ['checked_in_by_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tickets_seat_id'), ['seat_id'], unique=False)


def downgrade():
    # Dropping the table drops its indexes; MariaDB refuses to drop one a foreign key still needs.
    op.drop_table('tickets')
