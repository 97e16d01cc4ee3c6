"""Advisory lock keys: ints, pairs of 32-bit ints, and stable digests of strings and tuples.

PostgreSQL's advisory locks take a ``bigint`` or a pair of ``integer`` keys. Anything else
(``"user:123"``, ``("payments", tenant_id)``) is turned into a ``bigint`` by BLAKE2b: the
same key in every process, on every platform and Python version, whatever
``PYTHONHASHSEED`` says (Python's ``hash()`` is salted per process and would make two
processes lock different keys). The encoding is part of the public contract: changing it
is a breaking change, so it is versioned in the digest's personalisation string.
"""

from __future__ import annotations

import hashlib
from typing import TypeAlias
from uuid import UUID

from fkit_locks._errors import LockKeyError

__all__ = ["KeyPart", "LockKeyLike", "ResolvedKey", "lock_key", "resolve_key"]

KeyPart: TypeAlias = str | int | bytes | UUID
"""One part of a composite key: text, an integer of any size, bytes or a UUID."""

LockKeyLike: TypeAlias = int | str | bytes | UUID | tuple[KeyPart, ...]
"""What every lock function accepts as a key.

- an ``int`` in the signed 64-bit range: used as it is;
- a tuple of exactly two ``int`` in the signed 32-bit range: PostgreSQL's two-key form;
- a ``str``, ``bytes``, ``UUID`` or any other tuple of parts: a stable 64-bit digest.
"""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

# Bump the version (and document it) if the encoding below ever changes.
_PERSON = b"fkit-locks.v1"


class ResolvedKey:
    """A key as PostgreSQL receives it: one ``bigint`` or two ``integer`` arguments."""

    __slots__ = ("args", "display")

    def __init__(self, args: tuple[int] | tuple[int, int]) -> None:
        self.args = args
        # The numbers PostgreSQL sees, never the parts they came from: a part may carry
        # something that must not end up in a log line or a metric label.
        self.display = str(args[0]) if len(args) == 1 else f"{args[0]},{args[1]}"

    @property
    def value(self) -> int | tuple[int, int]:
        """The ``int`` key, or the pair."""
        return self.args[0] if len(self.args) == 1 else self.args

    def __repr__(self) -> str:
        return f"ResolvedKey({self.display})"


def _is_int(value: object) -> bool:
    # bool is an int subclass; True as a key is almost certainly a bug.
    return isinstance(value, int) and not isinstance(value, bool)


def _encode(part: object) -> bytes:
    # Subclasses (StrEnum, IntEnum) encode as their plain value, never their repr.
    if isinstance(part, str):
        tag, payload = b"s", part.encode("utf-8", "surrogatepass")
    elif _is_int(part):
        tag, payload = b"i", str(int(part)).encode("ascii")  # type: ignore[call-overload]
    elif isinstance(part, bytes):
        tag, payload = b"b", bytes(part)
    elif isinstance(part, UUID):
        tag, payload = b"u", part.bytes
    else:
        raise LockKeyError(
            f"a lock key part must be str, int, bytes or uuid.UUID, got {type(part).__name__}; "
            "convert it first (for example str(value)) so every process derives the same key"
        )
    # Tag and length prefix make the encoding injective: ("ab", "c") != ("a", "bc"),
    # "1" != 1.
    return tag + len(payload).to_bytes(8, "big") + payload


def _digest(parts: tuple[object, ...], namespace: str | None) -> int:
    h = hashlib.blake2b(digest_size=8, person=_PERSON)
    if namespace is not None:
        h.update(b"n" + _encode(namespace))
    for part in parts:
        h.update(_encode(part))
    return int.from_bytes(h.digest(), "big", signed=True)


def _check_namespace(namespace: object) -> None:
    if not isinstance(namespace, str) or not namespace:
        raise LockKeyError(
            f"namespace must be a non-empty str, got {namespace!r}; leave it None for no namespace"
        )


def resolve_key(key: object, namespace: str | None = None) -> ResolvedKey:
    """Turn any accepted key into the arguments of PostgreSQL's advisory lock functions.

    Raises:
        LockKeyError: The key (or namespace) cannot be a lock key.
    """
    if namespace is None and _is_int(key):
        if INT64_MIN <= key <= INT64_MAX:  # type: ignore[operator]
            return ResolvedKey((int(key),))  # type: ignore[call-overload]
        raise LockKeyError(
            f"an int lock key must fit PostgreSQL's bigint ({INT64_MIN} .. {INT64_MAX}), "
            f"got {key}; pass it as a str or inside a tuple to have it digested"
        )
    if namespace is not None:
        _check_namespace(namespace)
    if isinstance(key, tuple):
        parts: tuple[object, ...] = key
        if not parts:
            raise LockKeyError("a tuple lock key needs at least one part, got ()")
        if len(parts) == 2 and _is_int(parts[0]) and _is_int(parts[1]):
            if namespace is not None:
                raise LockKeyError(
                    "a pair of ints is PostgreSQL's two-key form and cannot take a namespace; "
                    "add a str part, e.g. ('orders', a, b), to have it digested"
                )
            a, b = int(parts[0]), int(parts[1])  # type: ignore[call-overload]
            if INT32_MIN <= a <= INT32_MAX and INT32_MIN <= b <= INT32_MAX:
                return ResolvedKey((a, b))
            raise LockKeyError(
                f"a pair of ints is PostgreSQL's two-key form, each in {INT32_MIN} .. "
                f"{INT32_MAX}, got ({a}, {b}); add a str part, e.g. ('orders', a, b), "
                "to have it digested"
            )
        return ResolvedKey((_digest(parts, namespace),))
    return ResolvedKey((_digest((key,), namespace),))


def lock_key(*parts: LockKeyLike, namespace: str | None = None) -> int | tuple[int, int]:
    """The key PostgreSQL receives for a lock key, as every lock function computes it.

    One argument is the key itself; several are the parts of a tuple key, so
    ``lock_key("payments", 42) == lock_key(("payments", 42))``. A ``str`` is the
    one-part tuple: ``lock_key("a") == lock_key(("a",))``.

    The digest is BLAKE2b (8 bytes, big-endian, signed) over a tagged, length-prefixed
    encoding of the namespace and the parts: stable across processes, platforms,
    Python versions and ``PYTHONHASHSEED``.

    Args:
        *parts: An ``int`` (kept as it is), a pair of 32-bit ints (kept as a pair), or
            ``str`` / ``bytes`` / ``UUID`` / ``int`` parts (digested).
        namespace: Keeps applications that share a database apart: the same key under
            two namespaces gives two different locks. With a namespace, an ``int`` key is
            digested too; a pair of ints cannot take one.

    Returns:
        A signed 64-bit ``int``, or the pair of ints.

    Raises:
        LockKeyError: The key cannot be a lock key; the message says what to pass instead.

    Example:
        >>> lock_key(42)
        42
        >>> lock_key(1, 2)
        (1, 2)
        >>> lock_key("payments", 42) == lock_key(("payments", 42))
        True
    """
    if not parts:
        raise LockKeyError("lock_key() needs a key")
    key: object = parts[0] if len(parts) == 1 else parts
    return resolve_key(key, namespace).value
