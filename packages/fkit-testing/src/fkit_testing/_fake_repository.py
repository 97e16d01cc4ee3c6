"""``InMemoryRepository``: a repository kept in a dict, for unit tests without a database."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar, cast

from fkit_core.errors import ReadOnlyTransactionError

__all__ = ["InMemoryRepository", "Repository"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class Repository(Protocol[T, K_contra]):
    """The repository shape :class:`~fkit_testing.RepositoryContract` checks.

    The names of the reference kit's repositories: ``save`` inserts an entity without a
    key (and gives it one) or replaces the one with its key; ``list_all`` pages in key
    order.
    """

    async def save(self, entity: T) -> T:
        """Insert or update ``entity``; return it as stored, key set."""
        ...

    async def find_by_id(self, key: K_contra) -> T | None:
        """The entity with ``key``, or None."""
        ...

    async def delete(self, key: K_contra) -> bool:
        """Delete the entity with ``key``; whether there was one."""
        ...

    async def list_all(self, limit: int = 100, offset: int = 0) -> list[T]:
        """One page of entities, in key order."""
        ...


class InMemoryRepository(Generic[T, K]):
    """A repository kept in a dict: fast and deterministic, with test helpers.

    It stores copies, as a database would: changing an object you passed in or got back
    changes nothing until you ``save`` it again. Keys are the ``key`` attribute of the
    entities; an entity saved without one gets the next integer (or ``new_key()``).
    Subclass it to add your port's queries over :meth:`all`.

    Inside :class:`~fkit_testing.InMemoryUnitOfWork` transactions its contents are
    snapshotted and restored on rollback, and writes in ``query()`` blocks raise
    :class:`~fkit_core.errors.ReadOnlyTransactionError`.

    Args:
        key: The entities' key attribute.
        new_key: Makes keys for entities saved without one; default 1, 2, 3, ...
        copy: Store and hand out deep copies (``False`` keeps the very objects).

    Example:
        >>> users = InMemoryRepository[User, int]()  # doctest: +SKIP
        >>> users.seed(User(id=None, email="a@example.com"))
        >>> users.count()
        1
    """

    def __init__(
        self,
        *,
        key: str = "id",
        new_key: Callable[[], K] | None = None,
        copy: bool = True,
    ) -> None:
        self._key = key
        self._new_key = new_key
        self._copy = copy
        self._rows: dict[K, T] = {}
        self._next = 1
        self._last = 0
        self.read_only = False
        """Set by an ``InMemoryUnitOfWork`` while a read-only block runs."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self._rows)} entities>"

    # -- the repository ----------------------------------------------------------------

    async def save(self, entity: T) -> T:
        """Insert ``entity`` (giving it a key if it has none) or replace the stored one.

        Returns:
            The entity with its key: the same object when it could be updated in place,
            a copy for frozen dataclasses.

        Raises:
            ReadOnlyTransactionError: Inside a read-only Unit of Work block.
        """
        self._check_writable("save")
        return self._store(entity)

    async def find_by_id(self, key: K) -> T | None:
        """The entity with ``key`` (a copy), or None."""
        found = self._rows.get(key)
        return None if found is None else self._out(found)

    async def delete(self, key: K) -> bool:
        """Delete the entity with ``key``; return whether there was one.

        Raises:
            ReadOnlyTransactionError: Inside a read-only Unit of Work block.
        """
        self._check_writable("delete")
        return self._rows.pop(key, None) is not None

    async def list_all(self, limit: int = 100, offset: int = 0) -> list[T]:
        """Up to ``limit`` entities from ``offset`` on, in key order."""
        return self.all()[offset : offset + limit]

    # -- test helpers --------------------------------------------------------------------

    def seed(self, *entities: T) -> list[T]:
        """Store entities directly (no read-only check); return them with their keys."""
        return [self._store(entity) for entity in entities]

    def clear(self) -> None:
        """Forget every entity and restart the key counter."""
        self._rows.clear()
        self._next = 1
        self._last = 0

    def count(self) -> int:
        """How many entities are stored."""
        return len(self._rows)

    def all(self) -> list[T]:
        """Every entity (copies), in key order (insertion order for unorderable keys)."""
        try:
            keys = sorted(self._rows)  # type: ignore[type-var]
        except TypeError:
            keys = list(self._rows)
        return [self._out(self._rows[k]) for k in keys]

    # -- Unit of Work support --------------------------------------------------------------

    def snapshot(self) -> object:
        """The current contents, for :meth:`restore`."""
        rows = dict(self._rows) if self._copy else copy.deepcopy(self._rows)
        return rows, self._last, self._next

    def restore(self, state: object) -> None:
        """Go back to a :meth:`snapshot`."""
        rows, last, next_key = cast("tuple[dict[K, T], int, int]", state)
        self._rows = dict(rows)
        # A rolled-back insert's key is used again, unlike a PostgreSQL sequence's; tests
        # should not depend on either.
        self._last, self._next = last, next_key

    # -- internals -------------------------------------------------------------------------

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise ReadOnlyTransactionError(
                f"cannot {action} in a read-only transaction ({type(self).__name__})",
                sqlstate="25006",
            )

    def _out(self, entity: T) -> T:
        return copy.deepcopy(entity) if self._copy else entity

    def _next_key(self) -> Any:
        if self._new_key is not None:
            return self._new_key()
        value = max(self._next, self._last + 1)
        self._next = value + 1
        return value

    def _store(self, entity: T) -> T:
        key: Any = getattr(entity, self._key, None)
        if key is None:
            key = self._next_key()
            entity = _with_key(entity, self._key, key)
        if isinstance(key, int) and key > self._last:
            # Explicit integer keys move the counter past them, so later inserts never clash.
            self._last = key
        self._rows[key] = copy.deepcopy(entity) if self._copy else entity
        return entity


def _with_key(entity: T, name: str, key: object) -> T:
    try:
        setattr(entity, name, key)
    except (AttributeError, dataclasses.FrozenInstanceError):
        if dataclasses.is_dataclass(entity) and not isinstance(entity, type):
            return dataclasses.replace(entity, **{name: key})
        raise
    return entity
