"""Alembic environment: migrate the app's database with the app's own engine."""

from alembic import context
from flask import current_app

from fakeproc.store.models import db

config = context.config


def run_migrations_online() -> None:
    engine = db.engine
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata,
                          render_as_batch=connection.dialect.name == "sqlite",
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=current_app.config["SQLALCHEMY_DATABASE_URI"],
                      target_metadata=db.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
