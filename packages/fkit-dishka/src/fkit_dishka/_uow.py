"""``AsyncUnitOfWorkProvider``: your Unit of Work, and a transaction per scope, by type.

No ``from __future__ import annotations`` here: dishka reads the factories' annotations
at runtime to know what each one provides and needs.
"""

from collections.abc import AsyncGenerator
from typing import Any, get_args, get_origin

from dishka import AnyOf, BaseScope, Provider, Scope

from fkit_core import AsyncSessionManager, AsyncSQLAlchemyUnitOfWork, AsyncSQLAlchemyUowTransaction
from fkit_core.errors import ConfigurationError
from fkit_dishka._scope import ScopedTransaction

__all__ = ["AsyncUnitOfWorkProvider", "transaction_type_of"]


def transaction_type_of(uow_type: type[Any]) -> type[AsyncSQLAlchemyUowTransaction] | None:
    """The ``TxT`` of ``class MyUnitOfWork(AsyncSQLAlchemyUnitOfWork[TxT])``, or None.

    Looks through the class and its bases for the parametrized ``AsyncSQLAlchemyUnitOfWork``
    base; None when the parameter is not a concrete transaction class (a ``TypeVar``).
    """
    if uow_type is AsyncSQLAlchemyUnitOfWork:
        return AsyncSQLAlchemyUowTransaction
    for klass in uow_type.__mro__:
        # Only the class's own __orig_bases__: getattr would return an ancestor's.
        for base in klass.__dict__.get("__orig_bases__", ()):
            if get_origin(base) is AsyncSQLAlchemyUnitOfWork:
                (argument,) = get_args(base)
                if isinstance(argument, type) and issubclass(
                    argument, AsyncSQLAlchemyUowTransaction
                ):
                    return argument
                return None
    return AsyncSQLAlchemyUowTransaction


class AsyncUnitOfWorkProvider(Provider):
    """Provides your Unit of Work, built from the session manager, and its transaction type.

    ``AsyncUnitOfWorkProvider(MyUnitOfWork)`` provides ``MyUnitOfWork`` (built as
    ``MyUnitOfWork(manager)``; its ``__init__`` takes the manager or a sessionmaker as
    its one argument, as in the reference kit) and the same object as
    ``AsyncSQLAlchemyUnitOfWork[MyTransaction]``, the transaction type being read from
    ``class MyUnitOfWork(AsyncSQLAlchemyUnitOfWork[MyTransaction])``.
    ``AsyncUnitOfWorkProvider()`` provides the plain ``AsyncSQLAlchemyUnitOfWork``, and
    ``AsyncUnitOfWorkProvider(transaction_type=MyTransaction)`` an
    ``AsyncSQLAlchemyUnitOfWork[MyTransaction]`` that hands out ``MyTransaction``.

    With ``provide_transaction`` on, the transaction type itself (``MyTransaction``) is
    provided in REQUEST scope: one ``uow.transaction()`` per scope, committed when the
    scope ends normally and rolled back when it ends with an exception.

    The session manager comes from :class:`AsyncDatabaseProvider` (or any provider of
    ``AsyncSessionManager``).

    Args:
        uow_type: ``AsyncSQLAlchemyUnitOfWork`` or your subclass of it.
        transaction_type: The transaction class; read from ``uow_type``'s base when None.
        scope: The Unit of Work's scope; it holds no connection, so APP is the default.
        provide_transaction: Also provide the transaction type in REQUEST scope.
        component: The dishka component to provide in (the default one when None).

    Raises:
        ConfigurationError: ``uow_type`` or ``transaction_type`` is not a subclass of
            fkit's classes, or the transaction type cannot be read from ``uow_type``.
    """

    def __init__(
        self,
        uow_type: type[AsyncSQLAlchemyUnitOfWork[Any]] = AsyncSQLAlchemyUnitOfWork,
        transaction_type: type[AsyncSQLAlchemyUowTransaction] | None = None,
        *,
        scope: BaseScope = Scope.APP,
        provide_transaction: bool = True,
        component: str | None = None,
    ) -> None:
        super().__init__(scope=scope, component=component)
        if not (isinstance(uow_type, type) and issubclass(uow_type, AsyncSQLAlchemyUnitOfWork)):
            raise ConfigurationError(
                f"AsyncUnitOfWorkProvider takes AsyncSQLAlchemyUnitOfWork or a subclass of it, "
                f"not {uow_type!r}"
            )
        tx_type = transaction_type or transaction_type_of(uow_type)
        if tx_type is None:
            raise ConfigurationError(
                f"cannot tell the transaction type of {uow_type.__qualname__} from its bases; "
                f"pass it: AsyncUnitOfWorkProvider({uow_type.__qualname__}, "
                "transaction_type=MyTransaction)"
            )
        if not (isinstance(tx_type, type) and issubclass(tx_type, AsyncSQLAlchemyUowTransaction)):
            raise ConfigurationError(
                "transaction_type must be AsyncSQLAlchemyUowTransaction or a subclass of it, "
                f"not {tx_type!r}"
            )
        self.uow_type = uow_type
        self.transaction_type = tx_type
        generic = AsyncSQLAlchemyUnitOfWork[tx_type]  # type: ignore[valid-type]
        if uow_type is AsyncSQLAlchemyUnitOfWork:
            provided: list[Any] = [generic]
            if tx_type is AsyncSQLAlchemyUowTransaction:
                provided.append(AsyncSQLAlchemyUnitOfWork)

            def unit_of_work(manager: AsyncSessionManager) -> Any:
                return AsyncSQLAlchemyUnitOfWork(manager, transaction_factory=tx_type)

        else:
            provided = [uow_type, generic]

            def unit_of_work(manager: AsyncSessionManager) -> Any:
                return uow_type(manager)

        self.provide(unit_of_work, provides=AnyOf[tuple(provided)])
        if provide_transaction:
            self.provide(
                _transaction_factory(provided[0], tx_type), scope=Scope.REQUEST, provides=tx_type
            )

    def __repr__(self) -> str:
        return f"<AsyncUnitOfWorkProvider {self.uow_type.__qualname__}>"


def _transaction_factory(uow_key: Any, tx_type: type[AsyncSQLAlchemyUowTransaction]) -> Any:
    async def transaction(uow: Any) -> AsyncGenerator[Any, BaseException | None]:
        scoped = ScopedTransaction(uow.transaction())
        tx = await scoped.enter()
        try:
            error = yield tx
        except BaseException as exc:
            await scoped.exit(exc)
            raise
        await scoped.exit(error)

    # The types are known only now: dishka reads these annotations to wire the factory.
    transaction.__annotations__ = {
        "uow": uow_key,
        "return": AsyncGenerator[tx_type, BaseException | None],  # type: ignore[valid-type]
    }
    return transaction
