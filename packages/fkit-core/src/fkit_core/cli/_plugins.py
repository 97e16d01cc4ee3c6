"""``fkit plugins``: the installed plugins and whether each loads."""

from __future__ import annotations

import warnings

from fkit_core._plugins import DiscoveredPlugin, discover_plugins
from fkit_core.errors import PluginConflictError

__all__ = ["describe_plugins", "list_plugins"]


def describe_plugins() -> tuple[list[str], bool]:
    """Lines describing each discovered plugin, and whether discovery itself succeeded."""
    try:
        with warnings.catch_warnings():
            # The CLI reports load failures in its own lines; no duplicate warning output.
            warnings.simplefilter("ignore")
            found: tuple[DiscoveredPlugin, ...] = discover_plugins()
    except PluginConflictError as exc:
        return [f"  error: {exc}"], False
    if not found:
        return ["  (none installed)"], True
    lines = []
    for plugin in found:
        status = "loads" if plugin.error is None else f"skipped: {plugin.error}"
        lines.append(f"  {plugin.name} ({plugin.distribution}, {plugin.value}): {status}")
    return lines, True


def list_plugins() -> int:
    """Print the discovered plugins; exit status 1 when discovery failed."""
    lines, ok = describe_plugins()
    print("fkit plugins:")
    print("\n".join(lines))
    return 0 if ok else 1
