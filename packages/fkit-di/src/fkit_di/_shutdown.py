"""``shutdown_resources``: stop a container's resources in dependency order, transitively.

dependency-injector (4.49) orders ``container.shutdown_resources()`` by *direct* links
only: a resource that reaches another through a ``Factory``, ``Singleton`` or
``Callable`` is stopped in the same round, concurrently with it. An engine could be
disposed under a session still closing, or, here, the session manager could start
closing (and refuse new work) while a worker that writes as it stops is still running.
This function follows the links through every provider.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from dependency_injector import providers

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["resources_below", "shutdown_resources"]

# dependency-injector 4.49 added BaseResource (above Resource and ContextLocalResource);
# before it, Resource is the base of every resource provider.
RESOURCE_BASE: Any = getattr(providers, "BaseResource", providers.Resource)


def resources_below(provider: providers.Provider[Any]) -> set[int]:
    """The ids of every resource ``provider`` depends on, directly or through other providers."""
    found: set[int] = set()
    seen: set[int] = {id(provider)}
    stack: list[Any] = list(provider.related)
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, RESOURCE_BASE):
            found.add(id(current))
        stack.extend(current.related)
    return found


async def shutdown_resources(container: Any) -> None:
    """Shut down ``container``'s resources, each one after every resource that uses it.

    Use it instead of ``await container.shutdown_resources()``: a resource that uses
    another only through other providers (``Factory(Worker, uow=database.uow)`` as a
    ``Resource``) is stopped before the one it uses, not at the same time. Resources
    that do not depend on each other stop concurrently, as with dependency-injector.

    Args:
        container: A dependency-injector container instance.

    Raises:
        RuntimeError: The resources depend on each other in a cycle.
    """
    resources: list[Any] = list(container.traverse(types=[RESOURCE_BASE]))
    below = {id(resource): resources_below(resource) for resource in resources}
    remaining = [resource for resource in resources if resource.initialized]
    while remaining:
        ready = [
            resource
            for resource in remaining
            if not any(
                id(resource) in below[id(other)] for other in remaining if other is not resource
            )
        ]
        if not ready:
            raise RuntimeError("the container's resources depend on each other in a cycle")
        await _gather(resource.shutdown() for resource in ready)
        remaining = [resource for resource in remaining if resource.initialized]


async def _gather(results: Iterable[Any]) -> None:
    awaitables = [result for result in results if inspect.isawaitable(result)]
    if awaitables:
        await asyncio.gather(*awaitables)
