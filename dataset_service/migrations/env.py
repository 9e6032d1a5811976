"""Alembic environment for every model on ``dataset_service.db.Base``."""
from alembic import context
from sqlalchemy import engine_from_config, pool

from dataset_service import models  # noqa: F401  (registers the tables)
from dataset_service.db import Base

import dataset_service.governance.models  # noqa: F401,E402  (access governance)
import dataset_service.airlock.models  # noqa: F401,E402  (export airlock, issue 8)

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                    prefix="sqlalchemy.", poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
    else:
        _run(connection)


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
