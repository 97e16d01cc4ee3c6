"""Every ```python block in the READMEs and docs/ runs, as a user would paste it.

Each block is executed as a standalone script in a fresh interpreter, with FKIT_DB_URL
naming the test database, so documented examples cannot rot. A block that defines
``test_`` functions is a pytest example: it is run by pytest as a user's test file, with
FKIT_TEST_DATABASE_URL naming the same server, and every test in it must pass.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _documents() -> list[Path]:
    found = [
        ROOT / "README.md",
        *sorted(ROOT.glob("packages/*/README.md")),
        *sorted(ROOT.glob("docs/**/*.md")),
    ]
    return [path for path in found if path.is_file()]


def _examples() -> list[tuple[str, str]]:
    examples = []
    for path in _documents():
        for index, match in enumerate(BLOCK.finditer(path.read_text()), start=1):
            examples.append((f"{path.relative_to(ROOT)}#{index}", match.group(1)))
    return examples


EXAMPLES = _examples()


def test_the_docs_have_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("code", [code for _, code in EXAMPLES], ids=[name for name, _ in EXAMPLES])
def test_example_runs(code: str, fkit_database_url: str, tmp_path: Path) -> None:
    url = make_url(fkit_database_url).set(drivername="postgresql+asyncpg")
    env = {**os.environ, "FKIT_DB_URL": url.render_as_string(hide_password=False)}
    env["FKIT_TEST_DATABASE_URL"] = fkit_database_url
    # Examples must not depend on the developer's own settings.
    for key in list(env):
        if key.startswith("FKIT_DB_") and key != "FKIT_DB_URL":
            del env[key]
    is_pytest_example = re.search(r"^(async )?def test_", code, re.MULTILINE) is not None
    if is_pytest_example:
        script = tmp_path / "test_example.py"
        # The configuration fkit-testing's README tells users to have.
        (tmp_path / "pytest.ini").write_text(
            "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
        )
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            str(script),
        ]
    else:
        script = tmp_path / "example.py"
        command = [sys.executable, str(script)]
    script.write_text(code)
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    if is_pytest_example:
        summary = result.stdout.strip().splitlines()[-1]
        assert "passed" in summary, summary
        assert "skipped" not in summary, summary
