"""The public API is pinned: a change to it is a deliberate change to this list."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import fkit_types
from fkit_core.errors import FkitError

ROOT = Path(__file__).resolve().parents[1]


def _isort_key(name: str) -> tuple[int, str]:
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


def test_all_is_pinned_and_sorted() -> None:
    assert fkit_types.__all__ == [
        "INCLUDE_DELETED",
        "NAMING_CONVENTION",
        "BaseTable",
        "IdentityPrimaryKeyMixin",
        "InvalidStoredValueError",
        "InvalidValueError",
        "NaiveDatetimeError",
        "PydanticJSONB",
        "SoftDeleteMixin",
        "StaleDataError",
        "TimestampMixin",
        "TypesPlugin",
        "TypesSession",
        "UTCDateTime",
        "UUIDPrimaryKeyMixin",
        "UnConstrainedEnum",
        "VersionedMixin",
        "__version__",
        "alembic_render_item",
        "json_dumps",
        "mixin_mapper_args",
        "uuid7",
    ]
    # isort-style, as ruff's RUF022 keeps it: constants, then classes, then the rest.
    assert fkit_types.__all__ == sorted(fkit_types.__all__, key=_isort_key)
    for name in fkit_types.__all__:
        assert hasattr(fkit_types, name), name


def test_version_matches_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert fkit_types.__version__ == pyproject["project"]["version"]


def test_errors_derive_from_fkit_error_and_the_closest_builtin() -> None:
    for error in (
        fkit_types.InvalidValueError,
        fkit_types.InvalidStoredValueError,
        fkit_types.NaiveDatetimeError,
        fkit_types.StaleDataError,
    ):
        assert issubclass(error, FkitError), error
    assert issubclass(fkit_types.InvalidValueError, ValueError)
    assert issubclass(fkit_types.InvalidStoredValueError, ValueError)
    assert issubclass(fkit_types.NaiveDatetimeError, fkit_types.InvalidValueError)


def test_importing_does_no_work() -> None:
    """No session-wide listener, no optional import, until a model needs them."""
    code = (
        "import sys\n"
        "from sqlalchemy import event\n"
        "from sqlalchemy.orm import Session\n"
        "import fkit_types\n"
        "from fkit_types import _soft_delete, _tracking\n"
        "assert not event.contains(Session, 'do_orm_execute', _soft_delete._exclude_deleted)\n"
        "assert not event.contains(Session, 'before_commit', _tracking._before_commit)\n"
        "heavy = [m for m in ('alembic', 'hypothesis', 'asyncpg', 'psycopg') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
