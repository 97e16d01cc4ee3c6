"""``OtelPlugin``: the ``otel`` plugin object and its (cheap) configuration.

Nothing here imports OpenTelemetry or SQLAlchemy at module level: the entry point names
this class, and plugin discovery must stay cheap. They are imported by ``setup()``.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider
    from sqlalchemy.engine import Engine

    from fkit_core import AsyncSessionManager
    from fkit_core.events import EngineCreated
    from fkit_otel._manager import ManagerTracing

__all__ = ["OtelPlugin"]


class OtelPlugin:
    """OpenTelemetry traces for fkit session managers: the ``otel`` plugin.

    Installed, it is set up on every session manager and traces through the global tracer
    provider (``opentelemetry.trace.set_tracer_provider``); pass a configured instance in
    ``plugins=[...]`` to replace it. For each manager it

    - opens a ``uow.transaction`` / ``uow.query`` / ``uow.managed_session`` span around
      every transaction and a ``uow.savepoint`` span around every savepoint, current while
      the body runs, with the outcome as status;
    - instruments every engine it creates (primary and replicas) with
      :func:`~fkit_otel.instrument_sqlalchemy`, so statements are child spans;
    - records retries as events on the failed attempt's span, lock waits as
      ``db.lock.wait`` child spans and health checks as ``db.health_check`` spans.

    Args:
        tracer_provider: Where spans go; the global provider when None (looked up when
            spans are made, so a provider set after start-up is used).
        service_name: Recorded as ``service.name`` on every span.
        statements: Instrument the manager's engines for statement spans.
        asyncpg: Also call :func:`~fkit_otel.instrument_asyncpg` (driver-level spans that
            duplicate the statement spans one level lower; needs ``fkit-otel[asyncpg]``).
    """

    name = "otel"
    requires_core = ">=0.1,<0.2"

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        service_name: str | None = None,
        statements: bool = True,
        asyncpg: bool = False,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.service_name = service_name
        self.statements = statements
        self.asyncpg = asyncpg

    def __repr__(self) -> str:
        return (
            f"OtelPlugin(service_name={self.service_name!r}, statements={self.statements!r}, "
            f"asyncpg={self.asyncpg!r})"
        )

    def setup(self, manager: AsyncSessionManager) -> None:
        """Hook transaction spans into ``manager`` and instrument its engines as they come.

        Called by the session manager before its engines exist. Calling it again for the
        same manager (a start retried after a failure) replaces the earlier wiring.
        """
        from fkit_core.events import EngineCreated
        from fkit_otel._manager import install
        from fkit_otel._tracing import Tracing

        wiring = install(manager)
        wiring.tracing = Tracing(self.tracer_provider, self.service_name)
        wiring.forget_engines()
        if self.statements:
            engines = wiring.engines
            provider, service = self.tracer_provider, self.service_name

            def on_engine(event: EngineCreated) -> None:
                from fkit_otel._statements import instrument_sqlalchemy

                if instrument_sqlalchemy(event.engine, service, tracer_provider=provider):
                    engines.append(weakref.ref(event.engine.sync_engine))

            wiring.on_engine(manager.bus.subscribe(EngineCreated, on_engine))
        if self.asyncpg:
            from fkit_otel._asyncpg import instrument_asyncpg

            instrument_asyncpg(tracer_provider=self.tracer_provider)

    def teardown(self, manager: AsyncSessionManager) -> None:
        """Unhook from ``manager`` and stop tracing the engines it instrumented (on close)."""
        from fkit_otel._manager import uninstall

        wiring: ManagerTracing | None = uninstall(manager)
        if wiring is not None:
            from fkit_otel._statements import uninstrument_sqlalchemy

            for ref in wiring.engines:
                engine: Engine | None = ref()
                if engine is not None:
                    uninstrument_sqlalchemy(engine)
