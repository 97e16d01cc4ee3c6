"""Who is testing: the run's id, this process's xdist worker id, and owner records.

Every database fkit-testing creates is named after the run, the schema and the worker
(``fkit_<run>_<schema>_<worker>``, the template ``fkit_<run>_<schema>_tpl``) and carries
an owner record in its comment, so that a later run can tell a stale database (its owner
died without cleaning up) from one in use. Standard library only: the plugin imports it at start-up.
"""

from __future__ import annotations

import json
import os
import re
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from fkit_testing._reaper import process_gone, process_start

__all__ = ["DB_PREFIX", "OWNER_MARK", "RunIdentity", "owner_alive", "owner_record", "parse_owner"]

DB_PREFIX = "fkit_"
OWNER_MARK = "fkit-testing"
_UNSAFE = re.compile(r"[^a-z0-9_]")


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """The test run (shared by the controller and its xdist workers) and this worker.

    Attributes:
        run: Ten hex digits naming the run.
        worker: ``"gw0"``, ``"gw1"``, ... under xdist, else ``"main"``.
        schema: A short key of the schema the databases hold (one run may use several,
            when conftest files in different directories override ``fkit_schema``).
    """

    run: str
    worker: str
    schema: str = ""

    @classmethod
    def create(cls, workerinput: dict[str, Any] | None) -> RunIdentity:
        """Read the identity from xdist's ``config.workerinput``, or make a new run's.

        Only a real xdist worker has ``workerinput``: a pytest started inside a worker
        (pytester) inherits its environment variables but is a run of its own.
        """
        if workerinput is not None:
            run = str(workerinput.get("testrunuid") or uuid.uuid4().hex)
            worker = str(workerinput.get("workerid") or "gw")
        else:
            run, worker = uuid.uuid4().hex, "main"
        return cls(_UNSAFE.sub("", run.lower())[:10], _UNSAFE.sub("_", worker.lower())[:20])

    def with_schema(self, schema: str) -> RunIdentity:
        """The identity of this run's and worker's databases holding schema ``schema``."""
        return RunIdentity(self.run, self.worker, schema)

    @property
    def prefix(self) -> str:
        """The name prefix of every database of this run with this schema."""
        schema = f"{self.schema}_" if self.schema else ""
        return f"{DB_PREFIX}{self.run}_{schema}"

    @property
    def template_name(self) -> str:
        """The template database: the schema, created once per run, schema and server."""
        return f"{self.prefix}tpl"

    @property
    def database_name(self) -> str:
        """This worker's database, cloned from the template."""
        return f"{self.prefix}{self.worker}"

    @property
    def lock_name(self) -> str:
        """Hashed into the advisory lock that serializes this run's database changes."""
        return f"{OWNER_MARK}:{self.run}"


def owner_record(identity: RunIdentity, role: str) -> str:
    """The comment stored on a database this process creates (JSON)."""
    pid = os.getpid()
    record = {
        OWNER_MARK: 1,
        "role": role,
        "run": identity.run,
        "schema": identity.schema,
        "host": socket.gethostname(),
        "pid": pid,
        "start": process_start(pid),
    }
    return json.dumps(record, sort_keys=True)


def parse_owner(comment: str | None) -> dict[str, Any] | None:
    """The owner record in a database comment, or None when fkit-testing did not write it."""
    if not comment:
        return None
    try:
        record = json.loads(comment)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get(OWNER_MARK) != 1:
        return None
    return record


def owner_alive(record: dict[str, Any]) -> bool | None:
    """Whether the process that wrote ``record`` still runs; None when it ran elsewhere."""
    if record.get("host") != socket.gethostname():
        return None
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return None
    if process_gone(pid):
        return False
    start = str(record.get("start") or "")
    # The same pid with another start time is another process: the owner is gone.
    return not start or process_start(pid) in ("", start)
