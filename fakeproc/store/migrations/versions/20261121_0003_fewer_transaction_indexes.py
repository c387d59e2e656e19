"""fewer transaction indexes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transactions_created_at'))
        batch_op.drop_index(batch_op.f('ix_transactions_last4'))
        batch_op.drop_index(batch_op.f('ix_transactions_orphaned'))
        batch_op.drop_index(batch_op.f('ix_transactions_status'))


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transactions_status'), ['status', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_orphaned'), ['orphaned', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_last4'), ['last4'], unique=False)
        batch_op.create_index(batch_op.f('ix_transactions_created_at'), ['created_at'], unique=False)

