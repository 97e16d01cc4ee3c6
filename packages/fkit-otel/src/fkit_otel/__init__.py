"""fkit-otel: OpenTelemetry traces for fkit (the ``otel`` plugin).

Importing this package is cheap: OpenTelemetry and the tracing machinery load when a
session manager sets the plugin up, or when one of the functions or
:class:`TracedAsyncUnitOfWork` is first used.
"""

from typing import TYPE_CHECKING, Any

from fkit_otel._asyncpg import instrument_asyncpg, uninstrument_asyncpg
from fkit_otel._plugin import OtelPlugin
from fkit_otel._version import VERSION as __version__

if TYPE_CHECKING:
    from fkit_otel._statements import instrument_sqlalchemy, uninstrument_sqlalchemy
    from fkit_otel._uow import TracedAsyncUnitOfWork

__all__ = [
    "OtelPlugin",
    "TracedAsyncUnitOfWork",
    "__version__",
    "instrument_asyncpg",
    "instrument_sqlalchemy",
    "uninstrument_asyncpg",
    "uninstrument_sqlalchemy",
]

# Where the names that import OpenTelemetry live; loaded on first access.
_LAZY = {
    "TracedAsyncUnitOfWork": "fkit_otel._uow",
    "instrument_sqlalchemy": "fkit_otel._statements",
    "uninstrument_sqlalchemy": "fkit_otel._statements",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'fkit_otel' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
