"""indexes for the lists at a million rows: by connector, by last 4, the open rows

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

IN_FLIGHT = sa.text("status = 'in_flight'")


def upgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_connector_id', ['connector', 'id'], unique=False)
        batch_op.create_index('ix_transactions_last4_id', ['last4', 'id'], unique=False)
        batch_op.create_index('ix_transactions_in_flight', ['id'], unique=False,
                              sqlite_where=IN_FLIGHT, postgresql_where=IN_FLIGHT)


def downgrade():
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_in_flight')
        batch_op.drop_index('ix_transactions_last4_id')
        batch_op.drop_index('ix_transactions_connector_id')
