"""The shipped contract suites, run on fkit's fakes and on a real SQLAlchemy repository.

Each test of a contract runs twice, ``[fake]`` and ``[sqlalchemy]``: the fakes behave as
the real thing does, inside ``fkit_manager``'s rolled-back test transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from fkit_testing_test_models import Note, NotesTransaction, SqlNoteRepository

from fkit_core import AsyncSQLAlchemyUnitOfWork
from fkit_testing import (
    InMemoryRepository,
    InMemoryUnitOfWork,
    RepositoryContract,
    UnitOfWorkContract,
)

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy.ext.asyncio import AsyncSession

    from fkit_testing import UnitOfWorkFactory

pytest_plugins = ["pytester"]


class NotesUnitOfWork(AsyncSQLAlchemyUnitOfWork[NotesTransaction]):
    def __init__(self, session_maker: Any) -> None:
        super().__init__(session_maker, NotesTransaction)


class TestNoteRepositoryContract(RepositoryContract[Note, int]):
    @pytest.fixture
    def fake_repository(self) -> InMemoryRepository[Note, int]:
        return InMemoryRepository()

    @pytest.fixture
    def sqlalchemy_repository(self, fkit_session: AsyncSession) -> SqlNoteRepository:
        return SqlNoteRepository(fkit_session)

    def new_entity(self, n: int) -> Note:
        return Note(id=None, body=f"note {n}", mark=n)


class TestNotesUnitOfWorkContract(UnitOfWorkContract):
    @pytest.fixture
    def fake_uow(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(notes=InMemoryRepository[Note, int]())

    @pytest.fixture
    def sqlalchemy_uow(self, fkit_uow: UnitOfWorkFactory) -> NotesUnitOfWork:
        return fkit_uow(NotesUnitOfWork)

    async def write(self, tx: Any, n: int) -> None:
        await tx.notes.save(Note(id=None, body=f"note {n}", mark=n))

    async def read(self, tx: Any) -> Collection[int]:
        return {note.mark for note in await tx.notes.list_all()}


def test_contract_tests_run_once_per_implementation(pytester: pytest.Pytester) -> None:
    # Collected as a user's suite collects it: the ids name the implementations.
    pytester.makepyfile(
        """
        import pytest
        from fkit_testing import InMemoryRepository, RepositoryContract

        class Item:
            def __init__(self, id, name):
                self.id, self.name = id, name

        class TestItems(RepositoryContract):
            implementations = ("fake", "other")

            @pytest.fixture
            def fake_repository(self):
                return InMemoryRepository(copy=False)

            @pytest.fixture
            def other_repository(self):
                return InMemoryRepository()

            def new_entity(self, n):
                return Item(None, f"item {n}")
        """
    )
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v", timeout=120)
    result.assert_outcomes(passed=12)
    result.stdout.fnmatch_lines(
        [
            "*test_save_gives_a_key_and_find_returns_the_data?fake? PASSED*",
            "*test_save_gives_a_key_and_find_returns_the_data?other? PASSED*",
        ]
    )


def test_a_fake_that_breaks_the_contract_fails_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from fkit_testing import InMemoryRepository, RepositoryContract

        class Forgetful(InMemoryRepository):
            async def delete(self, key):
                return True  # says it deleted, deletes nothing

        class Item:
            def __init__(self, id, name):
                self.id, self.name = id, name

        class TestItems(RepositoryContract):
            implementations = ("fake",)

            @pytest.fixture
            def fake_repository(self):
                return Forgetful()

            def new_entity(self, n):
                return Item(None, f"item {n}")
        """
    )
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*FAILED*test_delete_removes_and_says_whether_there_was_one*"])
