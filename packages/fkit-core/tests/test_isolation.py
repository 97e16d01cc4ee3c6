"""Isolation level parsing."""

from __future__ import annotations

import pytest

from fkit_core import ConfigurationError, IsolationLevel, parse_isolation_level


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("READ COMMITTED", IsolationLevel.READ_COMMITTED),
        ("read committed", IsolationLevel.READ_COMMITTED),
        ("  Repeatable   Read ", IsolationLevel.REPEATABLE_READ),
        ("serializable", IsolationLevel.SERIALIZABLE),
        ("READ_UNCOMMITTED", IsolationLevel.READ_UNCOMMITTED),
        ("repeatable-read", IsolationLevel.REPEATABLE_READ),
        (IsolationLevel.SERIALIZABLE, IsolationLevel.SERIALIZABLE),
        (None, None),
    ],
)
def test_accepted_spellings(raw: str | None, expected: IsolationLevel | None) -> None:
    assert parse_isolation_level(raw) is expected


@pytest.mark.parametrize("raw", ["SNAPSHOT", "", "read", 3])
def test_unknown_levels_are_a_configuration_error_listing_valid_ones(raw: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_isolation_level(raw)  # type: ignore[arg-type]
    message = str(info.value)
    for level in IsolationLevel:
        assert level.value in message
    assert repr(raw) in message


def test_enum_values_are_the_sql_spelling() -> None:
    assert [level.value for level in IsolationLevel] == [
        "READ UNCOMMITTED",
        "READ COMMITTED",
        "REPEATABLE READ",
        "SERIALIZABLE",
    ]
    assert IsolationLevel.SERIALIZABLE == "SERIALIZABLE"
