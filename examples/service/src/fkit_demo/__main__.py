"""The ``fkit-demo`` command: serve the example service, or drive a workload against it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import TYPE_CHECKING

from fkit_demo.database import database

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fkit-demo",
        description=(
            "fkit's example service. It uses the database in FKIT_DB_URL, or starts an "
            "embedded PostgreSQL for the run and removes it on exit."
        ),
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free one)"
    )
    parser.add_argument(
        "--settle-every",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="run the settle-orders job in the background this often (0: never)",
    )
    parser.add_argument(
        "--workload",
        action="store_true",
        help="instead of serving: start the service on a free port, drive a short concurrent "
        "workload against it, print a summary; exit 0 only when every check passes",
    )
    parser.add_argument(
        "--requests", type=int, default=200, metavar="N", help="workload size (default 200)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, metavar="C", help="requests in flight (default 8)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, metavar="SECONDS", help="workload time limit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.workload and (args.requests < 20 or not 1 <= args.concurrency <= 64):
        _parser().error("--requests must be at least 20 and --concurrency between 1 and 64")
    # SIGTERM stops the demo the way Ctrl-C does, so the embedded server is removed too.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        with database() as config:
            if not args.workload:
                from fkit_demo.serve import ServeResult, serve

                result = ServeResult()
                every = args.settle_every or None
                # uvicorn raises the Ctrl-C it handled again once it has shut down cleanly.
                with contextlib.suppress(KeyboardInterrupt):
                    asyncio.run(serve(config, port=args.port, settle_every=every, result=result))
                if not result.started:
                    print("fkit-demo: the service did not start (see above)", file=sys.stderr)
                    return 1
                print("fkit-demo: the service stopped", flush=True)
                return 0
            from fkit_demo.workload import run_workload

            print(
                f"fkit-demo: workload of about {args.requests} requests at concurrency "
                f"{args.concurrency} ..."
            )
            summary = asyncio.run(
                run_workload(
                    config,
                    requests=args.requests,
                    concurrency=args.concurrency,
                    timeout=args.timeout,
                )
            )
            print(summary.render())
            return 0 if summary.ok else 1
    except KeyboardInterrupt:
        # Interrupted while the database was starting or stopping, or during a workload.
        print("fkit-demo: interrupted", flush=True)
        return 130
    except RuntimeError as exc:
        print(f"fkit-demo: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"fkit-demo: the workload did not finish within {args.timeout} s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
