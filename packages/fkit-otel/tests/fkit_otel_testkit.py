"""What fkit-otel's tests share: the canaries that must never show in a span, and span trees.

A uniquely named module (conftest puts this folder on ``sys.path``), so no other
package's test helpers clash with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

PASSWORD = "pw-canary-s3cret"
"""In every test URL; trust authentication ignores it, no span may carry it."""

CANARY = "pv-canary"
"""Every string parameter value the tests bind contains this."""

CANARY_NUMBER = 987_654_321
"""And every integer parameter value is this one."""


def leaks(span: ReadableSpan) -> list[str]:
    forbidden = (PASSWORD, CANARY, str(CANARY_NUMBER))
    texts: list[tuple[str, Any]] = [("name", span.name)]
    texts += [(f"attribute {k}", v) for k, v in (span.attributes or {}).items()]
    for event in span.events:
        texts.append(("event", event.name))
        texts += [(f"event {event.name} {k}", v) for k, v in (event.attributes or {}).items()]
    texts.append(("status", span.status.description or ""))
    return [
        f"{span.name}: {where} = {value!r}"
        for where, value in texts
        if any(bad in str(value) for bad in forbidden)
    ]


class Spans:
    """The finished spans of one test, with helpers to walk their tree."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.exporter = exporter

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"expected one {name!r} span, got {[s.name for s in self.all()]}"
        return found[0]

    def children(self, parent: ReadableSpan) -> list[ReadableSpan]:
        assert parent.context is not None
        return [
            s
            for s in self.all()
            if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    def statements(self, parent: ReadableSpan) -> list[str]:
        """The SQL of the statement spans directly under ``parent``, in order."""
        found = [
            s for s in self.children(parent) if s.attributes and "db.statement" in s.attributes
        ]
        found.sort(key=lambda s: s.start_time or 0)
        return [str(s.attributes["db.statement"]) for s in found if s.attributes]

    def clear(self) -> None:
        self.exporter.clear()
