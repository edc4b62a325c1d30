"""events: an on-sale time (sales_start_at) and the waiting room's mode and fixed admission rate

sales_start_at NULL keeps today's behaviour (on sale once published). waiting_room is 'off',
'on_sale' (active around the on-sale time; the default, which does nothing without one) or
'always'. waiting_room_rate NULL admits as many buyers as the event can serve; a number admits
that many per minute. The queue itself lives in Redis, not here.

Revision ID: 0009
Revises: 0003
Create Date: 2026-12-07 02:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sales_start_at', sa.DateTime(), nullable=True))
        batch_op.add_column(
            sa.Column('waiting_room', sa.String(length=16), nullable=False, server_default='on_sale')
        )
        batch_op.add_column(sa.Column('waiting_room_rate', sa.Integer(), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_events_waiting_room'), "waiting_room IN ('off', 'on_sale', 'always')"
        )
        batch_op.create_check_constraint(
            op.f('ck_events_waiting_room_rate_positive'), 'waiting_room_rate IS NULL OR waiting_room_rate > 0'
        )


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_waiting_room_rate_positive'), type_='check')
        batch_op.drop_constraint(op.f('ck_events_waiting_room'), type_='check')
        batch_op.drop_column('waiting_room_rate')
        batch_op.drop_column('waiting_room')
        batch_op.drop_column('sales_start_at')
