"""Alembic environment of the clinic: the models' metadata, pg_safeguard's operations and the
autogenerate filters that leave the extension's own objects alone."""

import os

from alembic import context
from sqlalchemy import create_engine

import pg_safeguard.alembic  # registers op.isolate, op.enable_audit, ...
from clinic.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(os.environ["CLINIC_OWNER_URL"])
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                          **pg_safeguard.alembic.autogenerate_options(connection))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=os.environ["CLINIC_OWNER_URL"], target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
