from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING

import pytest

from fkit_testing import DatabaseUnavailableError, launch_postgres
from fkit_testing._urls import mask_password, plain_url, probe, with_driver

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.mark.parametrize(
    ("url", "plain"),
    [
        ("postgresql://u@h:1/d", "postgresql://u@h:1/d"),
        ("postgres://u@h/d", "postgresql://u@h/d"),
        ("postgresql+asyncpg://u:p@h/d?x=1", "postgresql://u:p@h/d?x=1"),
        ("postgresql+psycopg://u@h/d", "postgresql://u@h/d"),
    ],
)
def test_plain_url(url: str, plain: str) -> None:
    assert plain_url(url) == plain


def test_with_driver() -> None:
    assert with_driver("postgresql://u@h/d", "psycopg") == "postgresql+psycopg://u@h/d"
    assert with_driver("postgresql+asyncpg://u@h/d", "psycopg") == "postgresql+psycopg://u@h/d"


def test_non_postgres_url_is_rejected_without_its_password() -> None:
    with pytest.raises(ValueError, match="expected a postgresql:// URL") as caught:
        plain_url("mysql://root:hunter2@h/d")
    assert "hunter2" not in str(caught.value)


def test_mask_password() -> None:
    assert mask_password("postgresql://u:hunter2@h:5/d") == "postgresql://u:***@h:5/d"
    assert mask_password("postgresql://u@h:5/d") == "postgresql://u@h:5/d"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_probe_closed_port() -> None:
    port = closed_port()
    url = f"postgresql://u:hunter2@127.0.0.1:{port}/d"
    with pytest.raises(DatabaseUnavailableError, match="no PostgreSQL server answers") as caught:
        probe(url, source="SOME_VAR", hint="Do something.")
    message = str(caught.value)
    assert f"SOME_VAR is postgresql://u:***@127.0.0.1:{port}/d" in message
    assert "ConnectionRefusedError" in message
    assert message.endswith("Do something.")
    assert "hunter2" not in message


@pytest.fixture
def not_postgres() -> Iterator[int]:
    """A TCP server on 127.0.0.1 that answers like something other than PostgreSQL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(8)
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer)
    thread.start()
    yield listener.getsockname()[1]
    thread.join(timeout=60)
    listener.close()


def test_probe_other_protocol(not_postgres: int) -> None:
    with pytest.raises(DatabaseUnavailableError, match="does not speak the PostgreSQL protocol"):
        probe(f"postgresql://u@127.0.0.1:{not_postgres}/d")


@pytest.mark.parametrize("via", ["tcp", "unix socket"])
def test_probe_real_server(via: str) -> None:
    with launch_postgres() as server:
        if via == "tcp":
            url = server.url
        else:
            url = f"postgresql:///postgres?host={server.directory}&port={server.port}"
        probe(url)
