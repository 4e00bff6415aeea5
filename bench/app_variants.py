"""The apps the app-path section serves (bench/app_servers.py runs them).

Three ways to answer `GET /items/{id}` from one 10,000-row table, each a FastAPI
app with the same route shape (`response_model=None`: no pydantic round trip):
raw asyncpg (a pool, `fetchrow`), plain SQLAlchemy as most templates ship it
(`create_async_engine(url)` with defaults, `async_sessionmaker`, a session per
request, `session.get`), and the rendered service with a model, a revision and a
user-owned router using its `SessionDep` (`/bench/items/{id}`) and `ReadSessionDep`
(`/bench/read/items/{id}`), added as its README tells a user to.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from helpers import Service

from .app_servers import Stack

# Where the service keeps its session dependencies and declarative base, relative
# to its package: the one place to change when its layout moves.
SERVICE_DEPENDENCIES = "infra.web.database"
SERVICE_BASE = "db.base"

TABLE = "bench_item"
ROWS = 10_000
SEED = (
    f"INSERT INTO {TABLE} (id, name, quantity) "
    f"SELECT g, 'item ' || g, g % 100 FROM generate_series(1, {ROWS}) AS g",
    f"ANALYZE {TABLE}",
)

RAW_ASYNCPG = f'''"""Raw asyncpg: one pool, `fetchrow` per request."""
import os
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException, Request


@asynccontextmanager
async def lifespan(app: FastAPI):
    app.state.pool = await asyncpg.create_pool(os.environ["BENCH_DSN"])
    yield
    await app.state.pool.close()


router = APIRouter()


@router.get("/bench/items/{{item_id}}", response_model=None)
async def get_item(item_id: int, request: Request) -> dict[str, Any]:
    row = await request.app.state.pool.fetchrow(
        "SELECT id, name, quantity FROM {TABLE} WHERE id = $1", item_id
    )
    if row is None:
        raise HTTPException(404)
    return dict(row)


app = FastAPI(lifespan=lifespan)
app.include_router(router)  # as FastAPI apps are built, and the service's route is
'''

PLAIN_SQLALCHEMY = f'''"""Plain SQLAlchemy, as most templates ship it: engine defaults, a session per request."""
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

engine = create_async_engine(os.environ["BENCH_DATABASE_URL"])
async_session = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "{TABLE}"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    quantity: Mapped[int]


async def get_session() -> AsyncIterator[AsyncSession]:
    async with async_session() as session:
        yield session


@asynccontextmanager
async def lifespan(app: FastAPI):
    yield
    await engine.dispose()


router = APIRouter()


@router.get("/bench/items/{{item_id}}", response_model=None)
async def get_item(
    item_id: int, session: Annotated[AsyncSession, Depends(get_session)]
) -> dict[str, Any]:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(404)
    return {{"id": item.id, "name": item.name, "quantity": item.quantity}}


app = FastAPI(lifespan=lifespan)
app.include_router(router)  # as FastAPI apps are built, and the service's route is
'''

SERVICE_MODEL = f'''from sqlalchemy.orm import Mapped, mapped_column

from {{package}}.{SERVICE_BASE} import Base


class BenchItem(Base):
    __tablename__ = "{TABLE}"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    quantity: Mapped[int]
'''

SERVICE_REVISION = f"""op.create_table(
    "{TABLE}",
    sa.Column("id", sa.BigInteger(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("quantity", sa.Integer(), nullable=False),
)"""

SERVICE_ROUTER = f'''"""GET /items/{{{{id}}}} through each of the service's session dependencies."""

from typing import Any

from fastapi import APIRouter, HTTPException

from {{package}}.{SERVICE_DEPENDENCIES} import ReadSessionDep, SessionDep
from {{package}}.models.bench_item import BenchItem

router = APIRouter()


def as_dict(item: BenchItem | None) -> dict[str, Any]:
    if item is None:
        raise HTTPException(404)
    return {{{{"id": item.id, "name": item.name, "quantity": item.quantity}}}}


@router.get("/bench/items/{{{{item_id}}}}", response_model=None)
async def get_item(item_id: int, session: SessionDep) -> dict[str, Any]:
    return as_dict(await session.get(BenchItem, item_id))


@router.get("/bench/read/items/{{{{item_id}}}}", response_model=None)
async def read_item(item_id: int, session: ReadSessionDep) -> dict[str, Any]:
    return as_dict(await session.get(BenchItem, item_id))
'''


def prepare_service(service: Service) -> None:
    """The model, its revision and the router, as a user adds them; the app includes it."""
    service.add_model("bench_item", SERVICE_MODEL)
    # After the render's own revisions (a FastAPI service starts with its example's).
    heads = ScriptDirectory.from_config(Config(str(service.path / "alembic.ini"))).get_heads()
    service.write_revision("bench_item", tuple(heads) or None, SERVICE_REVISION)
    service.write(f"{service.package}/items_api.py", SERVICE_ROUTER.format(package=service.package))
    # Where main.py says a user's routers go: in create_app, after the example's.
    main = service.path / service.package / "main.py"
    anchor = "    app.include_router(items.router)"
    source = main.read_text()
    assert source.count(anchor) == 1, "main.py no longer includes the example's router"
    source = source.replace(
        f"from {service.package}.api import items\n",
        f"from {service.package} import items_api\nfrom {service.package}.api import items\n",
    )
    main.write_text(source.replace(anchor, f"{anchor}\n    app.include_router(items_api.router)"))


def write_peer_apps(folder: Path) -> Path:
    """The raw asyncpg and plain SQLAlchemy apps, as modules of `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw_asyncpg_app.py").write_text(RAW_ASYNCPG)
    (folder / "plain_sqlalchemy_app.py").write_text(PLAIN_SQLALCHEMY)
    return folder


def shipped_command(service: Service) -> tuple[list[str], Stack]:
    """The image's server command (its Dockerfile's CMD, less `uvicorn`) and its stack.

    A `--loop`/`--http` in the command is kept as the stack; uvicorn's default `auto`
    takes uvloop and httptools when they are importable: this bench's environment has
    them, the image only if the service's runtime dependencies bring them.
    """
    dockerfile = (service.path / "Dockerfile").read_text().splitlines()
    command = json.loads(next(line for line in reversed(dockerfile) if line.startswith("CMD "))[4:])
    assert command[0] == "uvicorn", f"the image serves with {command[0]}, not uvicorn"
    project = tomllib.loads((service.path / "pyproject.toml").read_text())["project"]
    names = " ".join(project.get("dependencies", [])).replace(" ", "").lower()
    standard = "uvicorn[standard" in names
    chosen = {
        "--loop": "uvloop" if standard or "uvloop" in names else "asyncio",
        "--http": "httptools" if standard or "httptools" in names else "h11",
    }
    arguments, words = [], iter(command[1:])
    for word in words:
        option, _, value = word.partition("=")
        if option in chosen:
            value = value or next(words)
            chosen[option] = value if value != "auto" else chosen[option]
        else:
            arguments.append(word)
    return arguments, (chosen["--loop"], chosen["--http"])
