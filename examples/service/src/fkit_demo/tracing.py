"""Where the demo's spans go: one compact line each on the console, or just counted."""

from __future__ import annotations

import re
import sys
import threading
from collections import Counter
from typing import TYPE_CHECKING, TextIO

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SpanCounter", "compact_line", "console_tracer_provider", "counting_tracer_provider"]

SERVICE_NAME = "fkit-demo"

# Attributes worth a glance, in this order; the rest stay in the span for real exporters.
_SHOWN = (
    "db.isolation_level",
    "db.transaction.readonly",
    "db.transaction.outcome",
    "fkit.lock.key",
    "fkit.lock.acquired",
    "error.type",
    "db.response.status_code",
)
_SPACES = re.compile(r"\s+")
_STATEMENT_WIDTH = 90


def compact_line(span: ReadableSpan) -> str:
    """One line per span: trace id, name (indented under its parent), duration, the gist.

    ``ConsoleSpanExporter`` prints a page of JSON per span by default, which buries a
    terminal within seconds; this keeps the trace readable while requests come in.
    """
    trace_id = f"{span.context.trace_id:032x}"[:8] if span.context else "--------"
    duration = (
        (span.end_time - span.start_time) / 1e6
        if span.end_time is not None and span.start_time is not None
        else 0.0
    )
    name = ("  ↳ " if span.parent is not None else "") + span.name
    attributes = span.attributes or {}
    statement = attributes.get("db.statement") or attributes.get("db.query.text")
    if statement is not None:
        gist = _SPACES.sub(" ", str(statement)).strip()
        if len(gist) > _STATEMENT_WIDTH:
            gist = gist[: _STATEMENT_WIDTH - 1] + "…"
    else:
        gist = " ".join(f"{key}={attributes[key]!s}" for key in _SHOWN if key in attributes)
    events = [event.name for event in span.events if event.name != "exception"]
    if events:
        gist += f" events={','.join(events)}"
    if span.status.status_code is StatusCode.ERROR:
        gist = f"ERROR {gist}"
    return f"[trace {trace_id}] {name:<24} {duration:8.2f} ms  {gist}\n"


def console_tracer_provider(out: TextIO | None = None) -> TracerProvider:
    """A tracer provider that prints every span as a :func:`compact_line`.

    Spans are printed in batches from a background thread, so a slow terminal never
    slows a request down; call ``shutdown()`` to print the last ones.
    """
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    exporter = ConsoleSpanExporter(out=out or sys.stdout, formatter=compact_line)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    return provider


class SpanCounter(SpanProcessor):
    """Counts finished spans by name instead of exporting them (the workload's processor)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def on_end(self, span: ReadableSpan) -> None:
        """Count one finished span."""
        with self._lock:
            self._counts[span.name] += 1

    @property
    def counts(self) -> dict[str, int]:
        """Finished spans so far, by name."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        """All finished spans so far."""
        with self._lock:
            return sum(self._counts.values())


def counting_tracer_provider() -> tuple[TracerProvider, SpanCounter]:
    """A tracer provider whose spans are only counted, and its counter."""
    counter = SpanCounter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME}), shutdown_on_exit=False
    )
    provider.add_span_processor(counter)
    return provider, counter
