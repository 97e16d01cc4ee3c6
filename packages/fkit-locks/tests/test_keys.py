"""Lock keys: ints as they are, pairs as pairs, everything else a stable 64-bit digest."""

from __future__ import annotations

import enum
import hashlib
import json
import os
import subprocess
import sys
from uuid import UUID

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fkit_core.errors import ConfigurationError, FkitError
from fkit_locks import LockKeyError, lock_key
from fkit_locks._keys import resolve_key

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
PART = st.one_of(st.text(), st.integers(), st.binary(), st.uuids())
PARTS = st.lists(PART, min_size=1, max_size=5).map(tuple)

# Pinned: these numbers are what every fkit-locks process, on every platform and Python
# version, locks for these keys. Changing one is a breaking change for every deployment
# that mixes versions.
GOLDEN = [
    (("user:123",), 2367216353793215565),
    ((("payments", 42),), -2903048167268167349),
    (("process_payments",), -1855903199351655704),
    ((b"\x00\xff",), -1698971452762918693),
    ((UUID(int=1),), 4234251584422810539),
    ((("a", "b"),), -8589923580172343491),
    (("",), -8619706794288251799),
    ((("x", -5, b"y", UUID(int=7)),), -7163718233609650275),
    (("payments", 42), -2903048167268167349),
    ((7,), 7),
]


def reference(parts: tuple[object, ...], namespace: str | None = None) -> int:
    """The documented derivation, written out independently of the implementation."""
    h = hashlib.blake2b(digest_size=8, person=b"fkit-locks.v1")

    def encode(part: object) -> bytes:
        if isinstance(part, str):
            tag, payload = b"s", part.encode("utf-8", "surrogatepass")
        elif isinstance(part, int):
            tag, payload = b"i", str(part).encode()
        elif isinstance(part, bytes):
            tag, payload = b"b", part
        else:
            assert isinstance(part, UUID)
            tag, payload = b"u", part.bytes
        return tag + len(payload).to_bytes(8, "big") + payload

    if namespace is not None:
        h.update(b"n" + encode(namespace))
    for part in parts:
        h.update(encode(part))
    return int.from_bytes(h.digest(), "big", signed=True)


@pytest.mark.parametrize(("args", "expected"), GOLDEN)
def test_pinned_keys(args: tuple[object, ...], expected: int) -> None:
    assert lock_key(*args) == expected  # type: ignore[arg-type]


def test_namespaces_are_pinned_too() -> None:
    assert lock_key("user:123", namespace="billing") == 8256819114495042656
    assert lock_key(7, namespace="billing") == 5518381576819222715


def test_the_same_keys_in_other_processes_whatever_the_hash_seed() -> None:
    code = (
        "import json, sys\n"
        "from uuid import UUID\n"
        "from fkit_locks import lock_key\n"
        "print(json.dumps([lock_key('user:123'), lock_key('payments', 42), "
        "lock_key(('x', -5, b'y', UUID(int=7))), lock_key('user:123', namespace='billing'), "
        "hash('user:123')]))\n"
    )
    outputs = []
    for seed in ("0", "1", "12345", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        outputs.append(json.loads(result.stdout))
    keys = {tuple(out[:4]) for out in outputs}
    assert keys == {
        (
            lock_key("user:123"),
            lock_key("payments", 42),
            lock_key(("x", -5, b"y", UUID(int=7))),
            lock_key("user:123", namespace="billing"),
        )
    }
    # The processes really did hash differently: Python's hash() would not have done.
    assert len({out[4] for out in outputs}) > 1


@given(INT64)
def test_an_int_in_range_is_the_key_itself(value: int) -> None:
    assert lock_key(value) == value


@given(st.one_of(st.integers(max_value=-(2**63) - 1), st.integers(min_value=2**63)))
def test_an_int_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(LockKeyError, match="bigint"):
        lock_key(value)


@given(INT32, INT32)
def test_a_pair_of_32_bit_ints_is_kept_as_a_pair(a: int, b: int) -> None:
    assert lock_key(a, b) == (a, b)
    assert lock_key((a, b)) == (a, b)


@given(INT32, st.one_of(st.integers(max_value=-(2**31) - 1), st.integers(min_value=2**31)))
def test_a_pair_out_of_the_32_bit_range_is_refused(a: int, b: int) -> None:
    with pytest.raises(LockKeyError, match="two-key form"):
        lock_key(a, b)
    with pytest.raises(LockKeyError, match="two-key form"):
        lock_key(b, a)


@given(PARTS, st.one_of(st.none(), st.text(min_size=1)))
def test_digests_fit_bigint_and_match_the_documented_derivation(
    parts: tuple[object, ...], namespace: str | None
) -> None:
    assume(not _is_pair(parts))  # the two-key form, tested above
    value = lock_key(parts, namespace=namespace)  # type: ignore[arg-type]
    assert isinstance(value, int)
    assert -(2**63) <= value < 2**63
    assert value == reference(parts, namespace)
    assert value == lock_key(parts, namespace=namespace)  # type: ignore[arg-type]


@given(st.text())
def test_a_str_is_the_one_part_tuple(value: str) -> None:
    assert lock_key(value) == lock_key((value,)) == reference((value,))


@given(PARTS, PARTS)
def test_different_parts_give_different_keys(a: tuple[object, ...], b: tuple[object, ...]) -> None:
    # The encoding is injective, so two keys collide only by a 2**-64 accident.
    assume(a != b and not _is_pair(a) and not _is_pair(b))
    assert lock_key(a) != lock_key(b)  # type: ignore[arg-type]


def _is_pair(parts: tuple[object, ...]) -> bool:
    return len(parts) == 2 and all(isinstance(p, int) for p in parts)


@given(PARTS, st.text(min_size=1), st.text(min_size=1))
def test_namespaces_keep_applications_apart(
    parts: tuple[object, ...], first: str, second: str
) -> None:
    assume(not _is_pair(parts))
    if first != second:
        assert lock_key(parts, namespace=first) != lock_key(parts, namespace=second)  # type: ignore[arg-type]
    assert lock_key(parts, namespace=first) != lock_key(parts)  # type: ignore[arg-type]


def test_the_encoding_does_not_confuse_neighbouring_parts() -> None:
    assert lock_key("ab", "c") != lock_key("a", "bc")
    assert lock_key(("1",)) != lock_key("x", 1) != lock_key("x", "1")
    assert lock_key(b"a") != lock_key("a")
    assert lock_key("a", namespace="b") != lock_key("b", "a")


def test_enum_members_are_keyed_by_their_value() -> None:
    class Job(enum.StrEnum):
        PAYMENTS = "payments"

    class Shard(enum.IntEnum):
        ONE = 1

    assert lock_key(Job.PAYMENTS) == lock_key("payments")
    assert lock_key(Shard.ONE) == 1
    assert lock_key("x", Shard.ONE) == lock_key("x", 1)


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (True, "got bool"),
        (1.5, "got float"),
        (("a", 1.5), "got float"),
        (("a", ("b",)), "got tuple"),
        ((), "at least one part"),
        (None, "got NoneType"),
        (["a"], "got list"),
    ],
)
def test_what_cannot_be_a_key_is_refused_with_advice(key: object, match: str) -> None:
    with pytest.raises(LockKeyError, match=match):
        resolve_key(key)


def test_namespace_misuse_is_refused() -> None:
    with pytest.raises(LockKeyError, match="non-empty str"):
        lock_key("a", namespace="")
    with pytest.raises(LockKeyError, match="cannot take a namespace"):
        lock_key(1, 2, namespace="app")
    with pytest.raises(LockKeyError, match="needs a key"):
        lock_key()


def test_key_errors_are_configuration_errors() -> None:
    assert issubclass(LockKeyError, ConfigurationError)
    assert issubclass(LockKeyError, ValueError)
    assert issubclass(LockKeyError, FkitError)


def test_the_display_is_the_number_never_the_parts() -> None:
    resolved = resolve_key(("reset-token", "s3cr3t"))
    assert resolved.display == str(lock_key("reset-token", "s3cr3t"))
    assert "s3cr3t" not in repr(resolved)
    assert resolve_key((1, 2)).display == "1,2"
