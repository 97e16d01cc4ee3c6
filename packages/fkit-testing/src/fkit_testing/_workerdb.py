"""This worker's test database: cloned from the run's template, dropped however the run ends."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fkit_testing._errors import LauncherError
from fkit_testing._urls import mask_password

if TYPE_CHECKING:
    from collections.abc import Iterator

    from fkit_testing._run import RunIdentity

__all__ = ["WorkerDatabase", "WorkerDatabases", "open_worker_database"]

_READY_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class WorkerDatabase:
    """The database this test process (this xdist worker) runs its tests in.

    Cloned from the run's template database, which holds the schema the ``fkit_schema``
    fixture describes; no other worker uses it. It is dropped when the session ends, and
    by a reaper process when the session is killed.

    Attributes:
        name: The database's name, ``fkit_<run>_<schema>_<worker>``.
        template: The template it was cloned from, ``fkit_<run>_<schema>_tpl``.
        worker: ``"gw0"``, ``"gw1"``, ... under pytest-xdist, else ``"main"``.
        url: Its plain ``postgresql://`` URL (no driver suffix).
        server_url: The URL the server was given by (``fkit_database_url``).
    """

    name: str
    template: str
    worker: str
    url: str = field(repr=False)
    server_url: str = field(repr=False)

    def __repr__(self) -> str:
        return f"<WorkerDatabase {self.name} at {mask_password(self.url)}>"

    def sqlalchemy_url(self, driver: str = "asyncpg") -> str:
        """The URL with SQLAlchemy's driver suffix, e.g. ``postgresql+asyncpg://...``."""
        from fkit_testing._urls import with_driver

        return with_driver(self.url, driver)


@contextlib.contextmanager
def open_worker_database(
    server_url: str, driver: str, identity: RunIdentity, schema: object
) -> Iterator[WorkerDatabase]:
    """Create this worker's database on ``server_url`` for the ``with`` block.

    A reaper process is armed before anything is created, so a SIGKILL at any point
    leaves nothing behind.

    Raises:
        LauncherError: The reaper could not be started.
        Exception: What creating the template or the database raised.
    """
    from fkit_testing._dbadmin import (
        create_worker_database,
        database_url,
        drop_worker_database,
        run_sync,
    )
    from fkit_testing._dbreaper import DatabaseReaper
    from fkit_testing._launcher import remember

    name = identity.database_name
    job = {
        "server_url": server_url,
        "driver": driver,
        "run": identity.run,
        "worker": identity.worker,
        "schema": identity.schema,
        "database": name,
    }
    reaper = DatabaseReaper(job)
    remember(reaper)
    try:
        reaper.wait_ready(_READY_TIMEOUT)
    except RuntimeError as exc:
        reaper.release(done=True)
        raise LauncherError(f"{exc}; the database would outlive a killed test run") from exc
    done = False
    try:
        run_sync(lambda: create_worker_database(server_url, driver, identity, schema))
        yield WorkerDatabase(
            name=name,
            template=identity.template_name,
            worker=identity.worker,
            url=database_url(server_url, name),
            server_url=server_url,
        )
        run_sync(lambda: drop_worker_database(server_url, driver, identity, name))
        done = True
    finally:
        # Not done (a failure, an interruption): the reaper drops what is left.
        reaper.release(done=done)


class WorkerDatabases:
    """This worker's databases on one server: one per schema, created on first use.

    A suite normally has one schema. Conftest files in different directories may
    override ``fkit_schema`` differently; each schema then gets its own template and
    worker database, and each test the one for the schema it sees.
    """

    def __init__(self, server_url: str, driver: str, identity: RunIdentity) -> None:
        self.server_url = server_url
        self.driver = driver
        self.identity = identity
        self._stack = contextlib.ExitStack()
        self._open: dict[str, WorkerDatabase | BaseException] = {}

    def get(self, schema: object) -> WorkerDatabase:
        """The database holding ``schema``, created (with its template) the first time.

        Raises:
            Exception: Creating it failed (now or the first time): the same error, with
                a note naming the databases and the schema.
        """
        from fkit_testing._schema import describe_schema, schema_key

        key = schema_key(schema)
        found = self._open.get(key)
        if isinstance(found, BaseException):
            raise found
        if found is not None:
            return found
        identity = self.identity.with_schema(key)
        try:
            database = self._stack.enter_context(
                open_worker_database(self.server_url, self.driver, identity, schema)
            )
        except Exception as exc:
            note = f"fkit-testing: creating the test database {identity.database_name} from the "
            note += f"template {identity.template_name} ({describe_schema(schema)}) failed"
            exc.add_note(note)
            # Every test that needs it reports this failure; nobody builds it again.
            self._open[key] = exc
            raise
        self._open[key] = database
        return database

    def close(self) -> None:
        """Drop every database opened here (and templates no worker needs any more)."""
        self._stack.close()
