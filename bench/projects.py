"""The projects the bench measures: a service with N models and revisions, Alembic's
stock async set-up beside it, and the seed-design reference."""

from __future__ import annotations

import shutil
from pathlib import Path

from .common import PYTHON, run

MODEL = """
class M{i:04d}(Base):
    __tablename__ = "t{i:04d}"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
"""

REVISION = """import sqlalchemy as sa
from alembic import op

revision = "r{i:04d}"
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "t{i:04d}",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_t{i:04d}")),
    )


def downgrade() -> None:
    op.drop_table("t{i:04d}")
"""

# The seed design: a minimal pydantic-settings Settings, read once.
SEED_CONFIG = """from functools import lru_cache

from pydantic_settings import BaseSettings


class Settings(BaseSettings):
    DATABASE_URL: str


@lru_cache
def get_settings() -> Settings:
    return Settings()
"""


def with_models(service: Path, count: int) -> None:
    """`count` models in the service's registry and one revision creating each table."""
    header = (
        "from datetime import datetime\n\nfrom sqlalchemy import DateTime, String, func\n"
        "from sqlalchemy.orm import Mapped, mapped_column\n\nfrom app.db.base import Base\n"
    )
    (service / "app/models/bench.py").write_text(
        header + "".join(MODEL.format(i=i) for i in range(count))
    )
    (service / "app/models/__init__.py").write_text("from app.models import bench  # noqa: F401\n")
    versions = service / "alembic/versions"
    for old in versions.glob("*.py"):
        old.unlink()
    for i in range(count):
        down = f"r{i - 1:04d}" if i else None
        (versions / f"r{i:04d}.py").write_text(REVISION.format(i=i, down=down))


def stock_alembic(ours: Path, project: Path) -> str:
    """`alembic init -t async` beside a copy of our models and revisions; returns env.py."""
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir()
    shutil.copytree(ours / "app", project / "app")
    run(PYTHON, "-m", "alembic", "init", "-t", "async", "alembic", cwd=project)
    shutil.rmtree(project / "alembic/versions")
    shutil.copytree(ours / "alembic/versions", project / "alembic/versions")
    return (project / "alembic/env.py").read_text()


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"Alembic's template changed: {old!r} not found"
    return text.replace(old, new)


def stock_project(ours: Path, project: Path, url: str) -> Path:
    """Alembic's stock async set-up, wired as its docs say: URL in alembic.ini."""
    env = stock_alembic(ours, project)
    env = replace(
        env,
        "target_metadata = None",
        "import app.models  # noqa: F401  every model onto Base.metadata\n"
        "from app.db.base import Base\ntarget_metadata = Base.metadata",
    )
    (project / "alembic/env.py").write_text(env)
    ini = project / "alembic.ini"
    # ConfigParser interpolation: a '%' in the URL must be doubled in the stock set-up.
    ini.write_text(
        replace(
            ini.read_text(),
            "sqlalchemy.url = driver://user:pass@localhost/dbname",
            f"sqlalchemy.url = {url.replace('%', '%%')}",
        )
    )
    return project


def seed_project(ours: Path, project: Path) -> Path:
    """The seed-design reference: the stock async env.py, URL from a cached pydantic-settings
    `get_settings()` (DATABASE_URL), `target_metadata = Base.metadata`, `compare_type=True`."""
    env = stock_alembic(ours, project)
    (project / "app/core/config.py").write_text(SEED_CONFIG)
    env = replace(
        env,
        "target_metadata = None",
        "import app.models  # noqa: F401  every model onto Base.metadata\n"
        "from app.core.config import get_settings\nfrom app.db.base import Base\n\n"
        "target_metadata = Base.metadata",
    )
    env = replace(
        env,
        "context.configure(connection=connection, target_metadata=target_metadata)",
        "context.configure(connection=connection, target_metadata=target_metadata, "
        "compare_type=True)",
    )
    env = replace(
        env,
        "    connectable = async_engine_from_config(\n"
        "        config.get_section(config.config_ini_section, {}),",
        "    section = config.get_section(config.config_ini_section, {})\n"
        '    section["sqlalchemy.url"] = get_settings().DATABASE_URL\n'
        "    connectable = async_engine_from_config(\n        section,",
    )
    (project / "alembic/env.py").write_text(env)
    return project
