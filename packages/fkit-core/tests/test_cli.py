"""The ``fkit`` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import pytest


def _fkit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fkit_core.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_doctor_reports_server_settings_plugins_pool_and_health(db_url: str) -> None:
    result = _fkit("doctor", "--url", db_url)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "server:   PostgreSQL" in out
    assert "health:   ok" in out
    assert "pool:" in out
    assert "sample (fkit-sample-plugin" in out
    assert "settings:" in out


def test_doctor_reads_the_url_from_the_environment(db_url: str) -> None:
    result = _fkit("doctor", env={"FKIT_DB_URL": db_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server:   PostgreSQL" in result.stdout


@pytest.mark.parametrize("driver", ["asyncpg"])
def test_doctor_fails_clearly_without_a_server_and_masks_the_password(driver: str) -> None:
    secret = "hunter2 @/%:x"
    url = f"postgresql+{driver}://me:{quote(secret, safe='')}@127.0.0.1:1/app"
    result = _fkit("doctor", "--url", url, "--timeout", "3")
    assert result.returncode == 1
    assert "cannot connect" in result.stdout
    assert "me:***@127.0.0.1:1/app" in result.stdout
    for text in (secret, quote(secret, safe="")):
        assert text not in result.stdout + result.stderr


def test_doctor_rejects_unusable_settings() -> None:
    result = _fkit("doctor", "--url", "mysql://me@localhost/db")
    assert result.returncode == 2
    assert "url" in result.stdout


def test_plugins_lists_the_installed_plugins() -> None:
    result = _fkit("plugins")
    assert result.returncode == 0
    assert "sample (fkit-sample-plugin, fkit_sample_plugin:plugin): loads" in result.stdout
