"""Contract test suites: the same behavioural tests against a fake and the real thing.

Subclass a contract in a ``Test...`` class and give it one fixture per implementation;
every test of the contract then runs once per implementation (``[fake]``,
``[sqlalchemy]``). A fake that passes the contract its real counterpart passes can stand
in for it in unit tests. Add your port's own behaviour as more tests in the subclass:
they run against every implementation too.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import pytest

from fkit_core.errors import ReadOnlyTransactionError

if TYPE_CHECKING:
    from collections.abc import Collection

__all__ = ["RepositoryContract", "UnitOfWorkContract"]

T = TypeVar("T")
K = TypeVar("K")


class _Boom(Exception):
    """The failure the contracts raise inside blocks on purpose."""


class _ParametrizedContract:
    implementations: ClassVar[tuple[str, ...]] = ("fake", "sqlalchemy")
    """The implementations to run against; each needs a ``<name>_<kind>`` fixture."""

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Run every test of the contract once per implementation."""
        if "implementation" in metafunc.fixturenames:
            metafunc.parametrize("implementation", self.implementations)


class RepositoryContract(_ParametrizedContract, Generic[T, K]):
    """What every implementation of a repository port must do (see ``Repository``).

    Subclass it as ``class TestUserRepository(RepositoryContract[User, int]):`` and
    provide:

    - a fixture per name in :attr:`implementations`: ``fake_repository`` and
      ``sqlalchemy_repository`` by default, each returning a fresh, empty repository;
    - :meth:`new_entity`, a new unsaved entity, distinct for each ``n``.

    Override :meth:`key_of` and :meth:`with_key` (default: the ``id`` attribute),
    :meth:`data_of` (what must survive a round trip; default: the dataclass fields, or
    the public attributes, key excluded) and :meth:`missing_key` when your entities
    differ.
    """

    @pytest.fixture
    def repository(self, request: pytest.FixtureRequest, implementation: str) -> Any:
        """The repository under test, from the ``<implementation>_repository`` fixture."""
        return request.getfixturevalue(f"{implementation}_repository")

    def new_entity(self, n: int) -> T:
        """A new entity, not saved yet, without a key; different data for each ``n``."""
        msg = f"{type(self).__name__} must define new_entity(self, n) for RepositoryContract"
        raise NotImplementedError(msg)

    def key_of(self, entity: T) -> K:
        """The entity's key."""
        key: K = entity.id  # type: ignore[attr-defined]
        return key

    def data_of(self, entity: T) -> object:
        """What a saved and loaded entity must keep: the fields, key excluded."""
        if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
            data = dataclasses.asdict(entity)
        else:
            data = {k: v for k, v in vars(entity).items() if not k.startswith("_")}
        data.pop("id", None)
        return data

    def with_key(self, entity: T, key: K) -> T:
        """``entity`` with its key set to ``key`` (default: the ``id`` attribute)."""
        if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
            with contextlib.suppress(dataclasses.FrozenInstanceError):
                entity.id = key  # type: ignore[attr-defined]
                return entity
            return dataclasses.replace(entity, id=key)
        entity.id = key  # type: ignore[attr-defined]
        return entity

    def missing_key(self) -> K:
        """A key no saved entity has."""
        key: Any = 2_000_000_001
        return key  # type: ignore[no-any-return]

    @pytest.mark.asyncio
    async def test_save_gives_a_key_and_find_returns_the_data(self, repository: Any) -> None:
        """A saved entity gets a key, and ``find_by_id`` returns equal data."""
        saved = await repository.save(self.new_entity(1))
        key = self.key_of(saved)
        assert key is not None
        found = await repository.find_by_id(key)
        assert found is not None
        assert self.key_of(found) == key
        assert self.data_of(found) == self.data_of(self.new_entity(1))

    @pytest.mark.asyncio
    async def test_find_of_a_missing_key_is_none(self, repository: Any) -> None:
        """``find_by_id`` of a key nobody has returns None."""
        await repository.save(self.new_entity(1))
        assert await repository.find_by_id(self.missing_key()) is None

    @pytest.mark.asyncio
    async def test_saved_entities_get_distinct_keys(self, repository: Any) -> None:
        """Each saved entity gets a key of its own."""
        keys = [self.key_of(await repository.save(self.new_entity(n))) for n in range(1, 4)]
        assert len(set(keys)) == 3

    @pytest.mark.asyncio
    async def test_save_of_a_saved_entity_updates_it(self, repository: Any) -> None:
        """Saving an entity that has a key replaces the stored one: no second entity."""
        saved = await repository.save(self.new_entity(1))
        key = self.key_of(saved)
        await repository.save(self.with_key(self.new_entity(2), key))
        found = await repository.find_by_id(key)
        assert found is not None
        assert self.data_of(found) == self.data_of(self.new_entity(2))
        assert len(await repository.list_all()) == 1

    @pytest.mark.asyncio
    async def test_delete_removes_and_says_whether_there_was_one(self, repository: Any) -> None:
        """``delete`` removes the entity and returns True, then False."""
        key = self.key_of(await repository.save(self.new_entity(1)))
        assert await repository.delete(key) is True
        assert await repository.find_by_id(key) is None
        assert await repository.delete(key) is False

    @pytest.mark.asyncio
    async def test_list_all_pages_in_key_order(self, repository: Any) -> None:
        """``list_all(limit, offset)`` pages through every entity in key order."""
        keys = [self.key_of(await repository.save(self.new_entity(n))) for n in range(1, 6)]
        everything = await repository.list_all()
        assert [self.key_of(e) for e in everything] == sorted(keys)  # type: ignore[type-var]
        first = await repository.list_all(limit=2, offset=0)
        rest = await repository.list_all(limit=10, offset=2)
        assert [self.key_of(e) for e in first + rest] == sorted(keys)  # type: ignore[type-var]
        assert await repository.list_all(limit=2, offset=5) == []


class UnitOfWorkContract(_ParametrizedContract):
    """What every Unit of Work must do with the writes of its blocks.

    Subclass it as ``class TestMyUnitOfWork(UnitOfWorkContract):`` and provide:

    - a fixture per name in :attr:`implementations`: ``fake_uow`` (an
      :class:`~fkit_testing.InMemoryUnitOfWork`, say) and ``sqlalchemy_uow`` (say
      ``fkit_uow(MyUnitOfWork)``), each over empty repositories;
    - :meth:`write`: one write through the block's transaction object, marked ``n``;
    - :meth:`read`: the marks of every write visible to a block.
    """

    @pytest.fixture
    def uow(self, request: pytest.FixtureRequest, implementation: str) -> Any:
        """The Unit of Work under test, from the ``<implementation>_uow`` fixture."""
        return request.getfixturevalue(f"{implementation}_uow")

    async def write(self, tx: Any, n: int) -> None:
        """Make one write marked ``n`` through ``tx`` (e.g. save an entity)."""
        msg = f"{type(self).__name__} must define async write(self, tx, n) for UnitOfWorkContract"
        raise NotImplementedError(msg)

    async def read(self, tx: Any) -> Collection[int]:
        """The marks of every write ``tx`` can see."""
        msg = f"{type(self).__name__} must define async read(self, tx) for UnitOfWorkContract"
        raise NotImplementedError(msg)

    async def _seen(self, uow: Any) -> set[int]:
        async with uow.query() as qx:
            return set(await self.read(qx))

    @pytest.mark.asyncio
    async def test_transaction_keeps_its_writes(self, uow: Any) -> None:
        """A block that ends normally commits its writes."""
        async with uow.transaction() as tx:
            await self.write(tx, 1)
            await self.write(tx, 2)
        assert await self._seen(uow) == {1, 2}

    @pytest.mark.asyncio
    async def test_exception_undoes_the_block_and_propagates(self, uow: Any) -> None:
        """A block that raises keeps none of its writes, and the exception comes out."""
        async with uow.transaction() as tx:
            await self.write(tx, 1)

        async def failing() -> None:
            async with uow.transaction() as tx:
                await self.write(tx, 2)
                raise _Boom

        with pytest.raises(_Boom):
            await failing()
        assert await self._seen(uow) == {1}

    @pytest.mark.asyncio
    async def test_failed_savepoint_undoes_only_its_own_writes(self, uow: Any) -> None:
        """A savepoint that raises undoes its writes; the transaction goes on and commits."""
        async with uow.transaction() as tx:
            await self.write(tx, 1)
            with contextlib.suppress(_Boom):
                async with tx.savepoint():
                    await self.write(tx, 2)
                    raise _Boom
            await self.write(tx, 3)
        assert await self._seen(uow) == {1, 3}

    @pytest.mark.asyncio
    async def test_query_keeps_no_writes(self, uow: Any) -> None:
        """Writes in a ``query()`` block are refused (ReadOnlyTransactionError) or dropped."""
        with contextlib.suppress(ReadOnlyTransactionError):
            async with uow.query() as qx:
                await self.write(qx, 1)
        assert await self._seen(uow) == set()

    @pytest.mark.asyncio
    async def test_managed_session_keeps_only_what_was_committed(self, uow: Any) -> None:
        """In ``managed_session()``, what was committed stays; the rest is undone."""
        async with uow.managed_session() as (tx, session):
            await self.write(tx, 1)
            await session.commit()
            await self.write(tx, 2)
        assert await self._seen(uow) == {1}

    @pytest.mark.asyncio
    async def test_run_returns_the_result_and_commits(self, uow: Any) -> None:
        """``run(fn)`` returns what ``fn(tx)`` returned and commits its writes."""

        async def work(tx: Any) -> str:
            await self.write(tx, 7)
            return "done"

        assert await uow.run(work) == "done"
        assert await self._seen(uow) == {7}
