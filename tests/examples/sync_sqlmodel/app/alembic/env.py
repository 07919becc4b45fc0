from alembic import context
from app.core.config import settings
from app.models import Item  # noqa: F401 - registers the table in SQLModel.metadata
from sqlmodel import SQLModel, create_engine

target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=str(settings.DATABASE_URL), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(str(settings.DATABASE_URL))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
