from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# The shared ORM models module (uniquely named, so no other package's tests clash with it).
sys.path.insert(0, str(Path(__file__).parent))

# Hang guard only: nothing here asserts how fast cleanup is.
HANG_GUARD = 60.0


def _process_gone(pid: int) -> bool:
    # A zombie counts as gone: PID 1 in a container may never reap the postmaster.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {HANG_GUARD}s: {what}")
        time.sleep(0.05)


@pytest.fixture
def process_gone() -> Callable[[int], bool]:
    """Whether a process id no longer names a live process."""
    return _process_gone


@pytest.fixture
def eventually() -> Callable[[Callable[[], bool], str], None]:
    """Wait for a condition, failing after a generous hang guard."""
    return _eventually


@pytest.fixture
def reachable_base() -> Iterator[Path]:
    """A base directory the server's OS user can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="fkit-testing-base-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Environment without the variables that steer fkit-testing."""
    for name in list(os.environ):
        if name.startswith("FKIT_TEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def driver(fkit_each_driver: str) -> str:
    """Each database test runs on every supported driver (FKIT_TEST_DRIVER narrows it)."""
    return fkit_each_driver


@pytest.fixture(scope="session")
def fkit_schema() -> object:
    """fkit-testing's own test databases hold the notes table of the contract tests."""
    from fkit_testing_test_models import Base

    return Base
