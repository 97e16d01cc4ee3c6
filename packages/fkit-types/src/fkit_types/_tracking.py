"""In-place change tracking for ``PydanticJSONB(..., mutable=True)`` attributes.

SQLAlchemy's ``sqlalchemy.ext.mutable`` tracks changes by making the value itself report
them, which needs the value to be a special class (``MutableDict``). A pydantic model is
the user's own class, and changes deep inside it (a nested model, a list append) never
pass through the top-level object. So this module compares instead: when an object is
loaded or refreshed, each tracked attribute's serialized form is kept; before a flush,
before a commit and before an ORM statement (whose autoflush would otherwise skip a
session that looks clean), the current form is compared with it and a difference marks
the attribute modified with ``flag_modified``, exactly as a reassignment would.

A plain ``session.flush()`` on a session with nothing else pending is skipped by
SQLAlchemy before any event fires; :class:`TypesSession` (installed by the ``types``
plugin) checks there too.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session, attributes
from sqlalchemy.orm.base import instance_state

if TYPE_CHECKING:
    from sqlalchemy.orm import ORMExecuteState
    from sqlalchemy.orm.state import InstanceState

    from fkit_types._json import PydanticJSONB

__all__ = ["check_in_place_changes", "track_attribute"]

_SNAPSHOTS = "_fkit_json_snapshots"  # per-object {attribute: serialized value}, in its __dict__
_REGISTRY = "fkit_types.tracked"  # session.info key: the session's objects to compare

_lock = threading.Lock()
_tracked: dict[type, dict[str, PydanticJSONB]] = {}
_resolved: dict[type, dict[str, PydanticJSONB]] = {}
_session_events_installed = False


def _keys(class_: type) -> dict[str, PydanticJSONB]:
    found = _resolved.get(class_)
    if found is None:
        found = {}
        for base in reversed(class_.__mro__):
            found.update(_tracked.get(base, {}))
        _resolved[class_] = found
    return found


def _registry(session: Session) -> weakref.WeakSet[InstanceState[Any]]:
    registry: weakref.WeakSet[InstanceState[Any]] | None = session.info.get(_REGISTRY)
    if registry is None:
        registry = session.info[_REGISTRY] = weakref.WeakSet()
    return registry


def _take_snapshots(state: InstanceState[Any], keys: Any = None) -> None:
    tracked = _keys(state.class_)
    snapshots: dict[str, bytes | None] = state.dict.setdefault(_SNAPSHOTS, {})
    for key in tracked if keys is None else keys:
        column_type = tracked.get(key)
        if column_type is not None and key in state.dict:
            snapshots[key] = column_type.snapshot(state.dict[key])
    session = state.session
    if session is not None:
        _registry(session).add(state)


def _on_load(target: object, context: Any) -> None:
    _take_snapshots(instance_state(target))


def _on_refresh(target: object, context: Any, attrs: Any) -> None:
    _take_snapshots(instance_state(target), attrs)


def _on_attach(session: Session, instance: object) -> None:
    if _keys(type(instance)):
        _registry(session).add(instance_state(instance))


def check_in_place_changes(session: Session) -> None:
    """Mark modified every tracked attribute of the session's objects that changed in place."""
    registry: weakref.WeakSet[InstanceState[Any]] | None = session.info.get(_REGISTRY)
    if not registry:
        return
    for state in list(registry):
        obj = state.obj()
        if obj is None or state.session_id != session.hash_key:
            registry.discard(state)
            continue
        snapshots: dict[str, bytes | None] = state.dict.setdefault(_SNAPSHOTS, {})
        for key, column_type in _keys(state.class_).items():
            if key not in state.dict:
                continue  # expired or never loaded: nothing in memory to have changed
            current = column_type.snapshot(state.dict[key])
            # New objects are inserted whole, and reassigned attributes are already modified.
            if state.key is not None and key not in state.committed_state and key in snapshots:
                before = snapshots[key]
                if current is None or before is None or current != before:
                    attributes.flag_modified(obj, key)
            snapshots[key] = current


def _before_flush(session: Session, flush_context: Any, instances: Any) -> None:
    check_in_place_changes(session)


def _before_commit(session: Session) -> None:
    check_in_place_changes(session)


def _do_orm_execute(orm_state: ORMExecuteState) -> None:
    # Runs before the statement's autoflush, which skips a session that looks clean.
    if orm_state.session.autoflush and not orm_state.is_column_load:
        check_in_place_changes(orm_state.session)


def _install_session_events() -> None:
    global _session_events_installed
    if _session_events_installed:
        return
    event.listen(Session, "before_flush", _before_flush)
    event.listen(Session, "before_commit", _before_commit)
    event.listen(Session, "do_orm_execute", _do_orm_execute)
    event.listen(Session, "after_attach", _on_attach)
    _session_events_installed = True


def track_attribute(class_: type, key: str, column_type: PydanticJSONB) -> None:
    """Track in-place changes of ``class_.key`` (called when its mapper is configured)."""
    with _lock:
        first_for_class = class_ not in _tracked
        _tracked.setdefault(class_, {})[key] = column_type
        _resolved.clear()
        _install_session_events()
        if first_for_class:
            event.listen(class_, "load", _on_load, propagate=True)
            event.listen(class_, "refresh", _on_refresh, propagate=True)
            event.listen(class_, "refresh_flush", _on_refresh, propagate=True)
