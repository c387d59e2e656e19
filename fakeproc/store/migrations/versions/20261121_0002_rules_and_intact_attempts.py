"""rules and intact attempts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('match', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('action', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=True),
    sa.Column('probability', sa.Float(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=255), nullable=True),
    sa.Column('fired', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rules'))
    )
    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.create_index('ix_rules_live', ['enabled', 'priority', 'id'], unique=False)

    # Every process compares this with the version it cached connectors and rules under.
    op.execute("INSERT INTO settings (key, value) VALUES ('config_version', 'initial')")

    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intact', sa.Boolean(), nullable=False,
                                      server_default=sa.true()))


def downgrade():
    op.execute("DELETE FROM settings WHERE key = 'config_version'")
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_column('intact')

    with op.batch_alter_table('rules', schema=None) as batch_op:
        batch_op.drop_index('ix_rules_live')

    op.drop_table('rules')
