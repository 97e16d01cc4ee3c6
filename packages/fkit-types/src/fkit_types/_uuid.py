"""UUIDv7 (RFC 9562): time-ordered, generated in Python, monotonic within a process."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["uuid7"]

_COUNTER_BITS = 42
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)

_lock = threading.Lock()
_last_ms = -1
_last_counter = 0


def _fresh_counter_and_tail() -> tuple[int, int]:
    rand = int.from_bytes(os.urandom(10), "big")
    # The counter starts random with its top bit clear, leaving at least 2**41 increments
    # before it would overflow within one millisecond.
    return (rand >> 32) & (_COUNTER_MAX >> 1), rand & 0xFFFF_FFFF


def uuid7() -> uuid.UUID:
    """A new UUID version 7: 48-bit Unix milliseconds, a 42-bit counter, 32 random bits.

    RFC 9562, section 6.2, method 1 (fixed-length dedicated counter): within one
    millisecond the counter is incremented, so every value this process generates is
    greater than the previous one, across threads too, even if the clock steps back.
    Python 3.11 has no ``uuid.uuid7``; this is the same layout as the one Python 3.14
    ships.

    Returns:
        The UUID. Sorting UUIDv7 values (as PostgreSQL's ``uuid`` type does, bytewise)
        sorts them by creation time.
    """
    global _last_ms, _last_counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            counter, tail = _fresh_counter_and_tail()
        else:
            # Same millisecond, or the clock stepped back: stay on the last timestamp.
            now_ms = _last_ms
            counter = _last_counter + 1
            tail = int.from_bytes(os.urandom(4), "big")
            if counter > _COUNTER_MAX:
                now_ms += 1
                counter, tail = _fresh_counter_and_tail()
        _last_ms, _last_counter = now_ms, counter
    value = (
        ((now_ms & 0xFFFF_FFFF_FFFF) << 80)
        | ((counter >> 30) << 64)  # 12 high counter bits: rand_a
        | ((counter & 0x3FFF_FFFF) << 32)  # 30 low counter bits: top of rand_b
        | tail
        | _VERSION_AND_VARIANT
    )
    return uuid.UUID(int=value)
