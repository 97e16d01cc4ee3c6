"""``fkit migrations``: write an Alembic environment wired to fkit, upgrade, downgrade.

This module is imported whenever the ``fkit`` parser is built, so it imports nothing
heavy at module level: SQLAlchemy, the settings and Alembic load inside the commands.
"""

from __future__ import annotations

import sys
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import argparse

__all__ = ["TEMPLATE_FILES", "add_migrations_parser", "init_migrations", "migrate", "run"]

TEMPLATE_FILES: Final = {
    "alembic.ini": "alembic.ini",
    "env.py": "migrations/env.py",
    "script.py.mako": "migrations/script.py.mako",
}
"""Template file (in ``fkit_core/_templates/migrations``) -> path written under DIR."""


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)


def add_migrations_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrations init|upgrade|downgrade`` to the ``fkit`` parser."""
    migrations = commands.add_parser(
        "migrations", help="Alembic migrations wired to fkit's settings (fkit-core[alembic])"
    )
    actions = migrations.add_subparsers(dest="migrations_command", required=True, metavar="COMMAND")
    init = actions.add_parser(
        "init", help="write DIR/alembic.ini and an async DIR/migrations/ environment"
    )
    init.add_argument("directory", metavar="DIR", help="where to write (created if missing)")
    for name, default in (("upgrade", "head"), ("downgrade", None)):
        command = actions.add_parser(name, help=f"alembic {name}, against fkit's database")
        command.add_argument(
            "--revision",
            default=default,
            required=default is None,
            help="target revision" + (f" (default {default})" if default else ", e.g. -1 or base"),
        )
        command.add_argument(
            "--url", default=None, help="database URL (default: the FKIT_DB_* environment settings)"
        )
        command.add_argument(
            "--ini", default="alembic.ini", help="path of the alembic.ini (default ./alembic.ini)"
        )


def init_migrations(directory: str | Path) -> list[Path]:
    """Write an async Alembic environment that takes its database from fkit's settings.

    Writes ``DIR/alembic.ini`` (no URL in it), ``DIR/migrations/env.py``,
    ``DIR/migrations/script.py.mako`` and an empty ``DIR/migrations/versions/``.

    Args:
        directory: Where to write; created when missing.

    Returns:
        The files written.

    Raises:
        FileExistsError: One of the files exists already; nothing was written.
    """
    target = Path(directory)
    templates = files("fkit_core").joinpath("_templates", "migrations")
    plan = {target / dest: templates.joinpath(source) for source, dest in TEMPLATE_FILES.items()}
    existing = [str(path) for path in plan if path.exists() or path.is_symlink()]
    if existing:
        raise FileExistsError(
            f"not overwriting {', '.join(existing)}; remove them or choose another directory"
        )
    written: list[Path] = []
    for path, source in plan.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        # "x": fail rather than overwrite a file created since the check above.
        with path.open("x", encoding="utf-8") as out:
            out.write(source.read_text(encoding="utf-8"))
        written.append(path)
    (target / "migrations" / "versions").mkdir(exist_ok=True)
    return written


def _init(directory: str) -> int:
    try:
        written = init_migrations(directory)
    except OSError as exc:
        _error(f"fkit migrations init {directory}: {exc}")
        return 1
    ini = Path(directory) / "alembic.ini"
    print("wrote:")
    for path in written:
        print(f"  {path}")
    print(
        f"next: set target_metadata in {Path(directory) / 'migrations' / 'env.py'}, then\n"
        f"  FKIT_DB_URL=postgresql+asyncpg://... alembic -c {ini} revision -m 'first'\n"
        f"  fkit migrations upgrade --ini {ini}"
    )
    return 0


def migrate(direction: str, revision: str, url: str | None, ini: str) -> int:
    """Run ``alembic upgrade`` or ``downgrade`` against fkit's database, logging to stderr.

    Returns:
        0 on success, 1 when the migration failed, 2 for unusable settings or a missing
        alembic.ini or Alembic.
    """
    import asyncio
    import logging

    from fkit_core._manager import AsyncSessionManager
    from fkit_core._migrations import downgrade_migrations, run_migrations
    from fkit_core.errors import ConfigurationError, FkitError, MissingDependencyError
    from fkit_core.settings import BasePostgresConfig

    try:
        config = BasePostgresConfig(url=url) if url else BasePostgresConfig()
    except FkitError as exc:
        _error(f"the settings are not usable: {exc}")
        return 2
    # env.py leaves logging to its caller; here that is us, and Alembic's progress lines
    # ("Running upgrade a -> b") are what a person at the terminal wants to see.
    logging.basicConfig(format="%(levelname)-5.5s [%(name)s] %(message)s")
    for name in ("alembic.runtime.migration", "fkit_core.migrations"):
        logging.getLogger(name).setLevel(logging.INFO)
    # Never started: migrations need only the settings, not engines or plugins.
    manager = AsyncSessionManager(config, plugins=[], autoload=False, name="migrations")
    step = run_migrations if direction == "upgrade" else downgrade_migrations
    try:
        asyncio.run(step(manager, ini, revision))
    except (ConfigurationError, MissingDependencyError) as exc:
        _error(str(exc))
        return 2
    except FkitError as exc:
        _error(str(exc))
        return 1
    print(f"{direction} to {revision!r} done on {config.masked_url()}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch a parsed ``fkit migrations ...`` command line."""
    if args.migrations_command == "init":
        return _init(args.directory)
    return migrate(args.migrations_command, args.revision, args.url, args.ini)
