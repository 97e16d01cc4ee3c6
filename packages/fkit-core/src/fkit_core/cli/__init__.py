"""The ``fkit`` command line: ``fkit doctor``, ``fkit plugins`` and ``fkit migrations``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    # Cheap to import: the migrations commands load their dependencies when they run.
    from fkit_core.cli._migrations import add_migrations_parser

    parser = argparse.ArgumentParser(
        prog="fkit", description="fkit: async SQLAlchemy on PostgreSQL"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = commands.add_parser(
        "doctor", help="connect, and report server, settings, plugins, pool and health"
    )
    doctor.add_argument(
        "--url", help="database URL (default: the FKIT_DB_* environment settings)", default=None
    )
    doctor.add_argument(
        "--timeout", type=float, default=5.0, help="seconds for the health check (default 5)"
    )
    commands.add_parser("plugins", help="list the installed fkit plugins and whether each loads")
    add_migrations_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fkit`` command line and return its exit status.

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when None.
    """
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        from fkit_core.cli._doctor import doctor

        return doctor(args.url, args.timeout)
    if args.command == "migrations":
        from fkit_core.cli._migrations import run

        return run(args)
    from fkit_core.cli._plugins import list_plugins

    return list_plugins()


if __name__ == "__main__":  # pragma: no cover - `python -m fkit_core.cli`
    sys.exit(main())
