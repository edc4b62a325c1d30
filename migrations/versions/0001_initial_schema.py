"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-24 09:21:20.272910

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('date', sa.DateTime(), nullable=False),
    sa.Column('venue', sa.String(length=200), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('columns', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sales_ended_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('draft', 'published', 'cancelled')", name=op.f('ck_events_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_date'), ['date'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_status'), ['status'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('payment_status', sa.String(length=16), nullable=False),
    sa.Column('payment_method', sa.String(length=20), nullable=True),
    sa.Column('total_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('hold_expires_at', sa.DateTime(), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('provider_reference', sa.String(length=64), nullable=True),
    sa.Column('failure_reason', sa.String(length=255), nullable=True),
    sa.Column('refunded_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('paid_at', sa.DateTime(), nullable=True),
    sa.Column('refunded_at', sa.DateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('pending_event_id', sa.Integer(), sa.Computed("CASE WHEN status = 'pending' THEN event_id END", persisted=True), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("payment_status IN ('pending', 'paid', 'failed', 'refunded')", name=op.f('ck_orders_payment_status')),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'cancelled', 'failed', 'expired')", name=op.f('ck_orders_status')),
    sa.CheckConstraint('total_amount >= 0', name=op.f('ck_orders_total_not_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_orders_event_id_events')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_orders_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('reference', name=op.f('uq_orders_reference')),
    sa.UniqueConstraint('user_id', 'pending_event_id', name='uq_orders_one_pending_per_event')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_hold_expires_at'), ['hold_expires_at'], unique=False)
        batch_op.create_index('ix_orders_status_hold_expires_at', ['status', 'hold_expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_orders_user_id'), ['user_id'], unique=False)

    op.create_table('price_categories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('price', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('color', sa.String(length=7), nullable=False),
    sa.Column('first_row', sa.Integer(), nullable=True),
    sa.Column('last_row', sa.Integer(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.CheckConstraint('price >= 0', name=op.f('ck_price_categories_price_not_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_price_categories_event_id_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_categories'))
    )
    with op.batch_alter_table('price_categories', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_price_categories_event_id'), ['event_id'], unique=False)

    op.create_table('seats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('row', sa.String(length=3), nullable=False),
    sa.Column('column', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reservation_expires_at', sa.DateTime(), nullable=True),
    sa.Column('price_category_id', sa.Integer(), nullable=False),
    sa.Column('live', sa.Integer(), sa.Computed('CASE WHEN deleted_at IS NULL THEN 1 END', persisted=True), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('available', 'reserved', 'booked')", name=op.f('ck_seats_status')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_seats_event_id_events')),
    sa.ForeignKeyConstraint(['price_category_id'], ['price_categories.id'], name=op.f('fk_seats_price_category_id_price_categories')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seats')),
    sa.UniqueConstraint('event_id', 'row', 'column', 'live', name='uq_seats_live_position')
    )
    with op.batch_alter_table('seats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_seats_event_id'), ['event_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_seats_price_category_id'), ['price_category_id'], unique=False)
        batch_op.create_index('ix_seats_status_reservation_expires_at', ['status', 'reservation_expires_at'], unique=False)

    op.create_table('bookings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('seat_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('payment_status', sa.String(length=16), nullable=False),
    sa.Column('payment_method', sa.String(length=20), nullable=True),
    sa.Column('live_seat_id', sa.Integer(), sa.Computed("CASE WHEN deleted_at IS NULL AND status IN ('pending', 'confirmed') THEN seat_id END", persisted=True), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('deleted_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("payment_status IN ('pending', 'paid', 'failed', 'refunded')", name=op.f('ck_bookings_payment_status')),
    sa.CheckConstraint("status IN ('pending', 'confirmed', 'cancelled', 'failed', 'expired')", name=op.f('ck_bookings_status')),
    sa.CheckConstraint('total_amount >= 0', name=op.f('ck_bookings_total_not_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_bookings_event_id_events')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_bookings_order_id_orders')),
    sa.ForeignKeyConstraint(['seat_id'], ['seats.id'], name=op.f('fk_bookings_seat_id_seats')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_bookings_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bookings')),
    sa.UniqueConstraint('live_seat_id', name=op.f('uq_bookings_live_seat_id'))
    )
    with op.batch_alter_table('bookings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bookings_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_bookings_event_id_status', ['event_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_bookings_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bookings_seat_id'), ['seat_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_bookings_user_id'), ['user_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('booking_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('amount', sa.Numeric(precision=10, scale=2), nullable=False),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('provider_reference', sa.String(length=64), nullable=False),
    sa.Column('card_last4', sa.String(length=4), nullable=True),
    sa.Column('failure_reason', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('charged_order_id', sa.Integer(), sa.Computed("CASE WHEN kind = 'charge' THEN order_id END", persisted=True), nullable=True),
    sa.CheckConstraint("kind IN ('charge', 'refund')", name=op.f('ck_payments_kind')),
    sa.CheckConstraint("result IN ('pending', 'succeeded', 'declined', 'error')", name=op.f('ck_payments_result')),
    sa.CheckConstraint('amount >= 0', name=op.f('ck_payments_amount_not_negative')),
    sa.ForeignKeyConstraint(['booking_id'], ['bookings.id'], name=op.f('fk_payments_booking_id_bookings')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('charged_order_id', name=op.f('uq_payments_charged_order_id')),
    sa.UniqueConstraint('provider_reference', name=op.f('uq_payments_provider_reference'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_booking_id'), ['booking_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_order_id'), ['order_id'], unique=False)



def downgrade():
    # Dropping a table drops its indexes; MariaDB refuses to drop an index a foreign key needs.
    for table in ("payments", "bookings", "seats", "orders", "price_categories", "users", "events"):
        op.drop_table(table)
