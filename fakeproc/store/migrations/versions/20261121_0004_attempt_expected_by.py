"""attempt expected_by: when an open attempt should have ended

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expected_by', sa.DateTime(), nullable=True))

    # An attempt still open here was left by a server from before this revision: without an
    # expected end, no sweep would ever close it and its transaction would stay in flight.
    # Due at once, the start-up sweep reads it interrupted; a server still answering it
    # overwrites that when it does.
    op.execute("UPDATE attempts SET expected_by = received_at WHERE delivery IS NULL")


def downgrade():
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_column('expected_by')
