"""Plugin contract and discovery through the ``fkit.plugins`` entry-point group."""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from fkit_core._version import VERSION
from fkit_core.errors import PluginConflictError, PluginError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from fkit_core._manager import AsyncSessionManager

__all__ = [
    "ENTRY_POINT_GROUP",
    "DiscoveredPlugin",
    "Plugin",
    "PluginLoadWarning",
    "check_requires_core",
    "discover_plugins",
    "resolve_plugins",
]

logger = logging.getLogger("fkit_core.plugins")

ENTRY_POINT_GROUP = "fkit.plugins"


class PluginLoadWarning(UserWarning):
    """An installed plugin was skipped because it could not be imported."""


@runtime_checkable
class Plugin(Protocol):
    """What an ``fkit.plugins`` entry point names.

    A plugin is a cheap object (no heavy imports at module level) with a ``name`` and a
    ``setup(manager)`` that subscribes to the manager's bus. It may declare
    ``requires_core``, a version range such as ``">=0.1,<0.2"``.
    ``setup`` runs before the engines are created, so a plugin can register
    engine-option hooks, then attach to each engine when ``EngineCreated`` fires.
    """

    name: str

    def setup(self, manager: AsyncSessionManager) -> None:
        """Wire the plugin into ``manager`` (subscribe to its bus, add hooks)."""


@dataclass(frozen=True, slots=True)
class DiscoveredPlugin:
    """One entry point found in the ``fkit.plugins`` group.

    Attributes:
        name: The plugin name (the entry point's name).
        distribution: The distribution that registered it, e.g. ``fkit-metrics``.
        value: The entry point's target, ``module:attribute``.
        plugin: The loaded plugin, or None when loading failed.
        error: Why loading failed, or None.
    """

    name: str
    distribution: str
    value: str
    plugin: Plugin | None
    error: str | None


def _distribution_name(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return dist.metadata["Name"] if dist is not None else "<unknown distribution>"


def _skip(ep: metadata.EntryPoint, distribution: str, message: str) -> DiscoveredPlugin:
    warnings.warn(message, PluginLoadWarning, stacklevel=3)
    logger.warning(message)
    return DiscoveredPlugin(ep.name, distribution, ep.value, None, message)


def _load(ep: metadata.EntryPoint, distribution: str) -> DiscoveredPlugin:
    try:
        obj = ep.load()
        if isinstance(obj, type):
            obj = obj()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return _skip(
            ep,
            distribution,
            f"fkit plugin {ep.name!r} from {distribution} was skipped: importing {ep.value} failed "
            f"because module {missing!r} is not installed. Install the package that provides "
            f"it (the plugin's extras: pip install '{distribution}[...]'), reinstall "
            f"{distribution}, or disable the plugin with FKIT_DISABLED_PLUGINS={ep.name}.",
        )
    except Exception as exc:
        # A broken plugin must not take every manager in the process down with it.
        return _skip(
            ep,
            distribution,
            f"fkit plugin {ep.name!r} from {distribution} was skipped: loading {ep.value} raised "
            f"{type(exc).__name__}: {exc}. Upgrade or reinstall {distribution}, or disable the "
            f"plugin with FKIT_DISABLED_PLUGINS={ep.name}.",
        )
    if not isinstance(obj, Plugin):
        return _skip(
            ep,
            distribution,
            f"fkit plugin {ep.name!r} from {distribution}: {ep.value} is not a plugin "
            "(expected an object with `name` and `setup(manager)`)",
        )
    return DiscoveredPlugin(ep.name, distribution, ep.value, obj, None)


@cache
def discover_plugins() -> tuple[DiscoveredPlugin, ...]:
    """Find and load every installed plugin, sorted by name; cached once per process.

    Returns:
        The discovered plugins, including those that failed to load (with their error).

    Raises:
        PluginConflictError: Two distributions register the same plugin name.
    """
    by_name: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        other = by_name.get(ep.name)
        if other is not None and other.value != ep.value:
            raise PluginConflictError(
                f"two installed distributions register the fkit plugin {ep.name!r}: "
                f"{_distribution_name(other)} ({other.value}) and "
                f"{_distribution_name(ep)} ({ep.value}). "
                "Uninstall one of them."
            )
        by_name[ep.name] = ep
    return tuple(_load(ep, _distribution_name(ep)) for _, ep in sorted(by_name.items()))


_VERSION_RE = re.compile(r"^\s*(==|!=|>=|<=|>|<|~=)\s*([0-9]+(?:\.[0-9]+)*)\s*$")


def _as_tuple(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def check_requires_core(requirement: str, core_version: str = VERSION) -> bool:
    """Tell whether ``core_version`` satisfies a comma-separated version range.

    Supports ``==``, ``!=``, ``>=``, ``<=``, ``>``, ``<`` and ``~=`` on release numbers,
    which is all a plugin needs to state the fkit-core versions it works with.

    Raises:
        PluginError: The range is malformed.
    """
    have = _as_tuple(core_version)
    for clause in requirement.split(","):
        match = _VERSION_RE.match(clause)
        if match is None:
            raise PluginError(
                f"malformed requires_core clause {clause.strip()!r} in {requirement!r}"
            )
        op, raw = match.groups()
        want = _as_tuple(raw)
        if op == "~=":
            # ~=X.Y means >=X.Y and ==X.*: the last given part may grow, the ones before may not.
            prefix = len(raw.split(".")) - 1
            ok = have >= want and have[:prefix] == want[:prefix]
        else:
            ok = {
                "==": have == want,
                "!=": have != want,
                ">=": have >= want,
                "<=": have <= want,
                ">": have > want,
                "<": have < want,
            }[op]
        if not ok:
            return False
    return True


def _disabled_names() -> frozenset[str]:
    raw = os.environ.get("FKIT_DISABLED_PLUGINS", "")
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def autoload_enabled(explicit: bool | None) -> bool:
    """Whether to load installed plugins: the argument if given, else the environment."""
    if explicit is not None:
        return explicit
    return os.environ.get("FKIT_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() not in {
        "1",
        "true",
        "yes",
    }


def resolve_plugins(explicit: Sequence[Plugin], autoload: bool | None) -> list[Plugin]:
    """Choose the plugins a manager sets up, sorted by name.

    Installed plugins come first (unless autoload is off or they are disabled through
    ``FKIT_DISABLED_PLUGINS``); an explicitly passed plugin replaces the installed one of
    the same name.

    Raises:
        PluginError: A plugin's ``requires_core`` excludes this fkit-core, or two explicit
            plugins share a name.
    """
    chosen: dict[str, Plugin] = {}
    if autoload_enabled(autoload):
        disabled = _disabled_names()
        if "*" not in disabled:
            for found in discover_plugins():
                if found.plugin is not None and found.name not in disabled:
                    chosen[found.name] = found.plugin
    explicit_names: set[str] = set()
    for plugin in explicit:
        if plugin.name in explicit_names:
            raise PluginError(f"two plugins named {plugin.name!r} were passed explicitly; pass one")
        explicit_names.add(plugin.name)
        chosen[plugin.name] = plugin
    for plugin in chosen.values():
        requirement = getattr(plugin, "requires_core", None)
        if requirement and not check_requires_core(requirement):
            raise PluginError(
                f"fkit plugin {plugin.name!r} requires fkit-core {requirement}, but {VERSION} is "
                "installed; upgrade the plugin or fkit-core so they match"
            )
    return [chosen[name] for name in sorted(chosen)]
