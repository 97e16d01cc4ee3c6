"""Which OS user runs PostgreSQL, and whether that user can reach a path.

``initdb`` and ``postgres`` refuse to run as root, so a root test process runs them as an
unprivileged user through ``runuser``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fkit_testing._errors import LauncherError

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["ENV_OS_USER", "OsUser", "resolve_os_user"]

ENV_OS_USER = "FKIT_TEST_PG_OS_USER"


@dataclass(frozen=True, slots=True)
class OsUser:
    """An unprivileged OS user that PostgreSQL's tools run as."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]
    runuser: str

    def wrap(self, argv: list[str]) -> list[str]:
        """Return ``argv`` prefixed so that it runs as this user."""
        return [self.runuser, "-u", self.name, "--", *argv]

    def can_reach(self, path: Path, *, want: int = os.X_OK) -> bool:
        """Tell whether this user can traverse to ``path`` and use it as ``want`` says.

        ``os.access`` answers for root, not for this user, so the mode bits of every
        ancestor are checked by hand (ACLs are not considered).
        """
        path = path.resolve()
        for ancestor in reversed(path.parents):
            if not self._allowed(ancestor, os.X_OK):
                return False
        return self._allowed(path, want)

    def _allowed(self, path: Path, want: int) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_uid == self.uid:
            shift = 6
        elif st.st_gid in self.groups:
            shift = 3
        else:
            shift = 0
        bits = {os.R_OK: stat.S_IROTH, os.W_OK: stat.S_IWOTH, os.X_OK: stat.S_IXOTH}
        needed = 0
        for flag, bit in bits.items():
            if want & flag:
                needed |= bit << shift
        return st.st_mode & needed == needed


def resolve_os_user(name: str | None = None) -> OsUser | None:
    """Pick the OS user that runs PostgreSQL, or ``None`` when the process is not root.

    Args:
        name: An explicit user; else ``FKIT_TEST_PG_OS_USER``; else ``postgres`` if it exists.

    Raises:
        LauncherError: The process is root and no usable unprivileged user is available.
    """
    if os.geteuid() != 0:
        return None
    explicit = name or os.environ.get(ENV_OS_USER) or None
    candidate = explicit or "postgres"
    try:
        entry = pwd.getpwnam(candidate)
    except KeyError:
        if explicit:
            where = "the os_user argument" if name else ENV_OS_USER
            msg = f"OS user {candidate!r} (from {where}) does not exist; create it or name another."
        else:
            msg = (
                "PostgreSQL refuses to run as root and there is no 'postgres' OS user: "
                f"create one (useradd --system postgres) or set {ENV_OS_USER} to an "
                "unprivileged user."
            )
        raise LauncherError(msg) from None
    if entry.pw_uid == 0:
        msg = f"OS user {candidate!r} has uid 0; PostgreSQL needs an unprivileged user."
        raise LauncherError(msg)
    runuser = shutil.which("runuser")
    if runuser is None:
        msg = (
            f"the test process is root, so PostgreSQL must run as {candidate!r} through "
            "`runuser` (util-linux), which is not on PATH; install util-linux or run the "
            "tests as an unprivileged user."
        )
        raise LauncherError(msg)
    groups = frozenset(os.getgrouplist(candidate, entry.pw_gid))
    return OsUser(candidate, entry.pw_uid, entry.pw_gid, groups, runuser)
