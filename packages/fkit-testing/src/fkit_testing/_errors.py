"""The errors fkit-testing raises, rooted in :class:`fkit_core.errors.FkitError`."""

from __future__ import annotations

from fkit_core.errors import FkitError

__all__ = ["DatabaseUnavailableError", "LauncherError", "ReplayTimeoutError"]


class LauncherError(FkitError, RuntimeError):
    """A throwaway PostgreSQL server could not be set up, started or removed.

    The message names the step that failed and carries the tool's stderr and the tail of
    the server log, so a failing test session explains itself.
    """


class DatabaseUnavailableError(FkitError, ConnectionError):
    """The PostgreSQL server the tests were pointed at cannot be reached.

    Raised by the ``fkit_database_url`` fixture when ``FKIT_TEST_DATABASE_URL`` names a
    server that does not answer; the test errors instead of being skipped.
    """


class ReplayTimeoutError(FkitError, TimeoutError):
    """A streaming replica did not replay the primary's WAL within the timeout.

    Raised by :meth:`fkit_testing.PostgresReplica.wait_for_replay`; the message gives both
    positions (LSNs) and points at the replica's log.
    """
