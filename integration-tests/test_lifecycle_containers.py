"""The session manager as a lifecycle component (dioxide style): `initialize()` / `dispose()`.

Containers such as dioxide start components that have `initialize()` in dependency order
and call their `dispose()` in reverse order. The tiny container below does exactly that;
the manager needs no adapter to take part.
"""

from __future__ import annotations

import uuid
from graphlib import TopologicalSorter
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork

if TYPE_CHECKING:
    from collections.abc import Callable


class LifecycleContainer:
    """Builds components, initializes them in dependency order, disposes them in reverse."""

    def __init__(self) -> None:
        self._factories: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {}
        self.instances: dict[str, Any] = {}
        self._started: list[str] = []

    def register(self, name: str, factory: Callable[..., Any], *needs: str) -> None:
        self._factories[name] = (factory, needs)

    async def start(self) -> None:
        order = TopologicalSorter({n: set(needs) for n, (_, needs) in self._factories.items()})
        for name in order.static_order():
            factory, needs = self._factories[name]
            instance = factory(*(self.instances[n] for n in needs))
            self.instances[name] = instance
            initialize = getattr(instance, "initialize", None)
            if initialize is not None:
                await initialize()
            self._started.append(name)

    async def stop(self) -> None:
        while self._started:
            instance = self.instances[self._started.pop()]
            dispose = getattr(instance, "dispose", None)
            if dispose is not None:
                await dispose()


class Ledger:
    """A component that needs the manager during its own initialize and dispose."""

    def __init__(self, manager: AsyncSessionManager, log: list[str]) -> None:
        self.uow = AsyncSQLAlchemyUnitOfWork(manager)
        self.manager = manager
        self.log = log
        self.table = f"ledger_{uuid.uuid4().hex[:10]}"

    async def initialize(self) -> None:
        self.log.append(f"ledger initialize (manager {self.manager.state})")
        async with self.uow.transaction() as tx:
            await tx.session.execute(text(f"CREATE TABLE {self.table} (v int)"))

    async def record(self, v: int) -> None:
        async with self.uow.transaction() as tx:
            await tx.session.execute(text(f"INSERT INTO {self.table} VALUES (:v)"), {"v": v})

    async def dispose(self) -> None:
        self.log.append(f"ledger dispose (manager {self.manager.state})")
        async with self.uow.transaction() as tx:
            await tx.session.execute(text(f"DROP TABLE {self.table}"))


@pytest.mark.asyncio
async def test_the_manager_is_a_lifecycle_component_initialized_and_disposed_in_order(
    fkit_database_url: str,
) -> None:
    url = make_url(fkit_database_url).set(drivername="postgresql+asyncpg")
    log: list[str] = []

    def manager_factory() -> AsyncSessionManager:
        manager = AsyncSessionManager(
            url.render_as_string(hide_password=False), plugins=[], autoload=False
        )
        log.append(f"manager built ({manager.state})")
        return manager

    container = LifecycleContainer()
    container.register("ledger", lambda manager: Ledger(manager, log), "manager")
    container.register("manager", manager_factory)

    await container.start()
    manager: AsyncSessionManager = container.instances["manager"]
    ledger: Ledger = container.instances["ledger"]
    assert manager.state == "started"
    await ledger.record(1)
    async with manager.get_session() as session:
        rows = (await session.execute(text(f"SELECT v FROM {ledger.table}"))).scalars().all()
    assert rows == [1]

    await container.stop()

    assert manager.state == "closed"
    assert log == [
        "manager built (new)",
        "ledger initialize (manager started)",
        "ledger dispose (manager started)",
    ]
    async with (
        AsyncSessionManager(
            url.render_as_string(hide_password=False), plugins=[], autoload=False
        ) as check,
        check.get_session() as session,
    ):
        exists = await session.execute(text("SELECT to_regclass(:t)"), {"t": ledger.table})
        assert exists.scalar() is None  # the ledger's dispose ran while the manager was up
