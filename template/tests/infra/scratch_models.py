"""Models that exist only in tests, for the sample tests of `db_session` and `client`.

Template-owned. Not on Base.metadata, so the migrations and `alembic check` never
see them; `create_scratch_tables` makes their tables inside the test's transaction,
and they vanish with it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class ScratchBase(DeclarativeBase):
    pass


class Note(ScratchBase):
    __tablename__ = "scratch_note"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str]


async def create_scratch_tables(session: AsyncSession) -> None:
    connection = await session.connection()
    await connection.run_sync(ScratchBase.metadata.create_all)
