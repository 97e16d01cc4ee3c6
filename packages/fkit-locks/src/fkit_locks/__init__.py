"""fkit-locks: PostgreSQL advisory locks and table locks for fkit.

Transaction-scoped advisory locks (:func:`try_advisory_xact_lock`,
:func:`advisory_xact_lock`), session-scoped ones on a dedicated connection
(:func:`advisory_lock`), table locks (:func:`lock_tables`, :class:`LockMode`), stable
keys (:func:`lock_key`) and :class:`PostgresAdvisoryLockMixin` for Unit of Work
transaction classes. Every acquisition is reported on the manager's bus as
``LockAcquired`` / ``LockNotAcquired`` / ``LockReleased``.
"""

from fkit_locks._acquired import AcquiredLock
from fkit_locks._errors import (
    LockError,
    LockKeyError,
    LockModeError,
    LockNotAcquiredError,
    SessionLockUnsupportedError,
    TableNameError,
    TableNotFoundError,
    TransactionRequiredError,
)
from fkit_locks._keys import KeyPart, LockKeyLike, lock_key
from fkit_locks._mixin import PostgresAdvisoryLockMixin
from fkit_locks._modes import LockMode, LockModeLike
from fkit_locks._plugin import LocksPlugin
from fkit_locks._session import AdvisoryLock, advisory_lock
from fkit_locks._tables import TableLike, TableLock, lock_tables
from fkit_locks._version import VERSION as __version__
from fkit_locks._xact import AdvisoryXactLock, advisory_xact_lock, try_advisory_xact_lock

__all__ = [
    "AcquiredLock",
    "AdvisoryLock",
    "AdvisoryXactLock",
    "KeyPart",
    "LockError",
    "LockKeyError",
    "LockKeyLike",
    "LockMode",
    "LockModeError",
    "LockModeLike",
    "LockNotAcquiredError",
    "LocksPlugin",
    "PostgresAdvisoryLockMixin",
    "SessionLockUnsupportedError",
    "TableLike",
    "TableLock",
    "TableNameError",
    "TableNotFoundError",
    "TransactionRequiredError",
    "__version__",
    "advisory_lock",
    "advisory_xact_lock",
    "lock_key",
    "lock_tables",
    "try_advisory_xact_lock",
]
