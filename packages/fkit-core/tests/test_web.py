"""One transaction per request (FastAPI through httpx's ASGI transport) and per background job."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI, HTTPException
from fkit_core_test_models import Account
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: TC002 - FastAPI reads annotations at runtime

from fkit_core import AsyncSessionManager, create_db_context, create_db_dependency
from fkit_core.errors import UniqueViolationError
from fkit_core.events import Event, TransactionEnded

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytestmark = pytest.mark.usefixtures("tables")


@pytest_asyncio.fixture
async def deferred_table(manager: AsyncSessionManager) -> AsyncIterator[str]:
    """A table whose unique constraint is checked only at COMMIT."""
    name = f"web_{uuid.uuid4().hex[:8]}"
    async with manager.get_transaction() as s:
        await s.execute(
            text(
                f"CREATE TABLE {name} (v int, CONSTRAINT {name}_v UNIQUE (v) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield name
    async with manager.get_transaction() as s:
        await s.execute(text(f"DROP TABLE {name}"))


def _app(source: Any, deferred: str) -> FastAPI:
    get_db = create_db_dependency(source)
    app = FastAPI()

    @app.post("/accounts/{id}")
    async def create(id: int, session: AsyncSession = Depends(get_db)) -> dict[str, int]:
        session.add(Account(id=id, owner="web", balance=1))
        return {"id": id}

    @app.post("/fail/{id}")
    async def fail(id: int, session: AsyncSession = Depends(get_db)) -> None:
        session.add(Account(id=id, owner="web", balance=1))
        await session.flush()
        raise HTTPException(status_code=409, detail="refused")

    @app.post("/commit-fails")
    async def commit_fails(session: AsyncSession = Depends(get_db)) -> dict[str, str]:
        # Both rows are accepted now; the deferred constraint fails only at COMMIT.
        await session.execute(text(f"INSERT INTO {deferred} VALUES (1), (1)"))
        return {"status": "looks fine to the handler"}

    return app


async def _ids(manager: AsyncSessionManager) -> list[int]:
    async with manager.get_session() as s:
        return sorted((await s.execute(select(Account.id))).scalars())


@pytest.mark.asyncio
@pytest.mark.parametrize("source_kind", ["sessionmaker", "manager"])
async def test_one_transaction_per_request(
    manager: AsyncSessionManager, deferred_table: str, events: list[Event], source_kind: str
) -> None:
    source = manager.session_maker if source_kind == "sessionmaker" else manager
    transport = httpx.ASGITransport(app=_app(source, deferred_table), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/accounts/1")).status_code == 200
        assert await _ids(manager) == [1]

        response = await client.post("/fail/2")
        assert response.status_code == 409
        assert await _ids(manager) == [1]  # the handler's error rolled the request back

        response = await client.post("/commit-fails")
        # The COMMIT ran before the response was sent, so its failure is the response.
        assert response.status_code == 500
        async with manager.get_session() as s:
            assert (await s.execute(text(f"SELECT count(*) FROM {deferred_table}"))).scalar() == 0
    outcomes = [e.outcome for e in events if isinstance(e, TransactionEnded)]
    assert outcomes[-3:] == ["commit", "error", "error"]


@pytest.mark.asyncio
async def test_background_context_commits_or_rolls_back(manager: AsyncSessionManager) -> None:
    db_context = create_db_context(manager.session_maker)
    async with db_context() as session:
        session.add(Account(id=1, owner="job", balance=1))
    with pytest.raises(RuntimeError):
        async with db_context() as session:
            session.add(Account(id=2, owner="job", balance=1))
            raise RuntimeError("job failed")
    with pytest.raises(UniqueViolationError):
        async with create_db_context(manager)() as session:
            session.add(Account(id=1, owner="again", balance=1))
    assert await _ids(manager) == [1]


def test_fkit_core_imports_no_web_framework() -> None:
    import subprocess
    import sys

    code = "import sys, fkit_core; assert 'fastapi' not in sys.modules and 'starlette' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
