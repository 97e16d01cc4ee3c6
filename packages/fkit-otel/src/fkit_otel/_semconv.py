"""Attribute names, following OpenTelemetry's database semantic-convention migration rule.

``OTEL_SEMCONV_STABILITY_OPT_IN`` is a comma-separated list. With ``database`` in it the
stable names are emitted instead of the old ones; with ``database/dup``, both. Anything
else keeps the old (pre-1.26) names, which is what the reference kit documents.

Nothing here imports OpenTelemetry: these are plain strings and dictionaries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "ENGINE_NAME",
    "ERROR_TYPE",
    "ISOLATION_LEVEL",
    "LOCK_ACQUIRED",
    "LOCK_KEY",
    "LOCK_SCOPE",
    "LOCK_SHARED",
    "MANAGER_NAME",
    "OUTCOME",
    "READONLY",
    "SERVICE_NAME",
    "SQLSTATE",
    "SYSTEM",
    "Conventions",
    "SemconvMode",
    "operation_of",
    "semconv_mode",
]

SemconvMode = Literal["old", "stable", "dup"]
"""Which database attribute names spans carry: old, stable, or both."""

SYSTEM = "postgresql"

# fkit's own names: not part of any OpenTelemetry convention, so the same in every mode.
ISOLATION_LEVEL = "db.isolation_level"
READONLY = "db.transaction.readonly"
OUTCOME = "db.transaction.outcome"
ENGINE_NAME = "fkit.engine.name"
MANAGER_NAME = "fkit.manager.name"
LOCK_KEY = "fkit.lock.key"
LOCK_SCOPE = "fkit.lock.scope"
LOCK_SHARED = "fkit.lock.shared"
LOCK_ACQUIRED = "fkit.lock.acquired"
SERVICE_NAME = "service.name"
# Names without an old counterpart, emitted in every mode.
ERROR_TYPE = "error.type"
SQLSTATE = "db.response.status_code"


def semconv_mode(value: str | None = None) -> SemconvMode:
    """Read the database opt-in from ``OTEL_SEMCONV_STABILITY_OPT_IN`` (or ``value``).

    ``database/dup`` wins over ``database`` when both are listed, as the rule says.
    """
    raw = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "") if value is None else value
    options = {part.strip().lower() for part in raw.split(",")}
    if "database/dup" in options:
        return "dup"
    if "database" in options:
        return "stable"
    return "old"


@dataclass(frozen=True, slots=True)
class Conventions:
    """The attribute names of one mode; each field is a tuple of the names to write."""

    mode: SemconvMode
    system: tuple[str, ...]
    operation: tuple[str, ...]
    namespace: tuple[str, ...]
    statement: tuple[str, ...]
    address: tuple[str, ...]
    port: tuple[str, ...]

    @classmethod
    def for_mode(cls, mode: SemconvMode) -> Conventions:
        """The names for ``mode``."""
        old = mode in ("old", "dup")
        new = mode in ("stable", "dup")

        def pick(old_name: str, new_name: str) -> tuple[str, ...]:
            return (*((old_name,) if old else ()), *((new_name,) if new else ()))

        return cls(
            mode,
            system=pick("db.system", "db.system.name"),
            operation=pick("db.operation", "db.operation.name"),
            namespace=pick("db.name", "db.namespace"),
            statement=pick("db.statement", "db.query.text"),
            address=pick("net.peer.name", "server.address"),
            port=pick("net.peer.port", "server.port"),
        )

    @classmethod
    def from_environment(cls) -> Conventions:
        """The names the environment asks for (read now, not at import)."""
        return cls.for_mode(semconv_mode())


@lru_cache(maxsize=1024)
def operation_of(statement: str) -> str | None:
    """The statement's first keyword, upper-cased (``SELECT``), or None.

    OpenTelemetry advises against parsing SQL; like the contrib SQLAlchemy
    instrumentation this only takes the first word, and only when it is a word.
    SQLAlchemy hands the same string object for a cached statement, so the cache hits.
    """
    head = statement.lstrip().split(None, 1)
    if not head:
        return None
    word = head[0].rstrip(";")
    return word.upper() if word.isalpha() else None
