"""Bad input at a rendered FastAPI service's edge (issue 28).

- A route's unhandled error costs no other request: the same keep-alive connection
  answers the next one, under uvicorn as the image runs it (uvloop, httptools) and
  as `make serve` runs it (--reload).
- The service's fuzz test (tests/infra/test_api_fuzz.py, schemathesis) can fail: a
  route that lets through what its column cannot hold passes it thanks to the
  data-exception handling (422), and fails it without that handling (500). The
  fuzz itself runs in every FastAPI combination's suite (test_options.py).
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import httpx2
from dockerfile import exec_form, last
from helpers import Service
from serving import api, live, serving
from sqlalchemy.engine import URL

__all__ = ["api", "live"]  # fixtures


def server_options(service: Service, how: str) -> tuple[str, ...]:
    """uvicorn's options after the app, as the image's CMD or `make serve` give them."""
    if how == "image":
        command = exec_form(last(service.path / "Dockerfile", "CMD"))
    else:
        [recipe] = re.findall(
            r"^serve:.*\n\t\$\(RUN\) (.+)$", (service.path / "Makefile").read_text(), re.M
        )
        command = shlex.split(recipe)
    assert command[:2] == ["uvicorn", "app.main:app"], command
    return tuple(command[2:])


def test_after_a_500_the_same_connection_answers_the_next_request(api: Service, live: str) -> None:
    for how in ("image", "make serve"):
        options = server_options(api, how)
        assert ("--reload" in options) == (how == "make serve"), options
        with (
            serving(api, api.env(live), "app.test_app:app", options) as (base, output),
            httpx2.Client(base_url=base, limits=httpx2.Limits(max_connections=1)) as client,
        ):
            paths = ("/fail", "/health/live", "/divide", "/items/1")
            answers = [client.get(path) for path in paths]
        assert [answer.status_code for answer in answers] == [500, 200, 422, 404], how
        assert answers[0].json() == {"detail": "internal server error"}
        log = output()
        # uvicorn's access lines name the client's address: one port, one connection.
        clients = re.findall(r'127\.0\.0\.1:(\d+) - "GET /(?!docs)', log)  # not serving()'s probe
        assert len(clients) == 4 and len(set(clients)) == 1, log
        assert log.count("GET /fail: 500, unhandled") == 1, log  # ours, once
        assert "Exception in ASGI application" not in log, log  # the server's: it closes


UNGUARDED = '''"""Test-only: the example as it was before infra/column_values.py: models that let
through what the columns cannot hold, as a team's next route may."""

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel

from app.api.items import ItemOut
from app.infra.web.database import SessionDep
from app.infra.web.error_responses import ErrorBody
from app.models.item import Item

router = APIRouter(prefix="/unguarded")


class ItemIn(BaseModel):
    name: str


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_item(item: ItemIn, session: SessionDep) -> ItemOut:
    row = Item(name=item.name)
    session.add(row)
    await session.commit()
    return ItemOut.model_validate(row)


@router.get("/{item_id}", responses={404: {"model": ErrorBody}})
async def read_item(item_id: int, session: SessionDep) -> ItemOut:
    row = await session.get(Item, item_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "item not found")
    return ItemOut.model_validate(row)
'''
# Runs the service's fuzz test twice: as it is, and with the data-exception handling
# taken out of the error answers (errors.py asks `data_exception` what a value was).
FUZZ_TWICE = """import pytest
from fastapi import FastAPI

import tests.infra.test_api_fuzz as fuzz
from app.infra.web import errors
from tests.infra.test_api_fuzz import fuzzed_app

__all__ = ["fuzzed_app"]


def test_with_the_handling(fuzzed_app: FastAPI) -> None:
    fuzz.test_every_route_answers_as_its_document_says(fuzzed_app)


def test_without_the_handling(fuzzed_app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(errors, "data_exception", lambda exc: None)
    with pytest.raises(AssertionError) as failed:
        fuzz.test_every_route_answers_as_its_document_says(fuzzed_app)
    # An int beyond bigint, which asyncpg refuses to send: a 500 without the handling.
    print(failed.value)
    assert "GET /unguarded/{item_id} (positive)" in str(failed.value)
    assert "ST101 Server error" in str(failed.value)
"""


def test_the_fuzz_test_fails_without_the_data_exception_handling(
    api: Service, tmp_path: Path, postgres_server: URL
) -> None:
    # A copy of the render whose app also serves UNGUARDED's routes.
    service = Service(Path(shutil.copytree(api.path, tmp_path / "svc")))
    service.write("app/api/unguarded.py", UNGUARDED)
    main = service.path / "app/main.py"
    include = "    app.include_router(items.router)"
    assert include in main.read_text()
    main.write_text(
        main.read_text()
        .replace("from app.api import items", "from app.api import items, unguarded")
        .replace(include, f"    app.include_router(unguarded.router)\n{include}")
    )
    service.write("tests/test_fuzz_twice.py", FUZZ_TWICE)
    env = service.env(
        TEST_DATABASE_URL=postgres_server.render_as_string(hide_password=False),
        FUZZ_EXAMPLES="10",  # enough to find the int beyond bigint (a fixed seed)
        FUZZ_PATHS="^/unguarded",
    )
    output = service.ok(service.pytest("tests/test_fuzz_twice.py", "-rP", env=env))
    assert "2 passed" in output, output
    print(output[output.index("Schemathesis found") :][:600])  # what the fuzzer reported
