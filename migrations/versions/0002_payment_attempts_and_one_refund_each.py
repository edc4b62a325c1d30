"""payment attempts, unanswered attempts, at most one refund per seat or per order

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

CHARGED_ORDER_ID = "CASE WHEN kind = 'charge' THEN order_id END"
REFUND_SCOPE = "CASE WHEN kind = 'refund' THEN COALESCE(booking_id, 0) END"


def _rebuilding_keeps_generated_columns(batch_op):
    """SQLite changes this table by copying it, and would copy into its generated column: drop and
    make that column again instead (its values are computed). MariaDB alters in place."""
    if op.get_bind().dialect.name != "sqlite":
        return
    batch_op.drop_constraint('uq_payments_charged_order_id', type_='unique')
    batch_op.drop_column('charged_order_id')
    batch_op.add_column(sa.Column('charged_order_id', sa.Integer(), sa.Computed(CHARGED_ORDER_ID, persisted=True), nullable=True))
    batch_op.create_unique_constraint('uq_payments_charged_order_id', ['charged_order_id'])


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        _rebuilding_keeps_generated_columns(batch_op)
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
        batch_op.alter_column('provider_reference', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('refund_scope', sa.Integer(), sa.Computed(REFUND_SCOPE, persisted=True), nullable=True))
        batch_op.create_unique_constraint('uq_payments_order_id_refund_scope', ['order_id', 'refund_scope'])


def downgrade():
    # The older schema needs a reference on every row: attempts the provider never answered get one.
    placeholder = "CONCAT('unanswered_', id)" if op.get_bind().dialect.name == "mysql" else "'unanswered_' || id"
    op.execute(f"UPDATE payments SET provider_reference = {placeholder} WHERE provider_reference IS NULL")
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint('uq_payments_order_id_refund_scope', type_='unique')
        batch_op.drop_column('refund_scope')
        _rebuilding_keeps_generated_columns(batch_op)
        batch_op.alter_column('provider_reference', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('attempt')
