"""The metric families, created once per (registry, prefix) and shared by every instance.

prometheus_client refuses to register a second collector under a name it already has
("Duplicated timeseries in CollectorRegistry"), which is what two metrics objects on
the global registry used to hit. Here the families of one registry and prefix are made
once and then handed to every ``PostgresMetrics`` that asks for the same ones.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

from fkit_core.errors import ConfigurationError
from fkit_metrics._pool import PoolCollector, pool_gauge_specs

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

    from fkit_metrics._plugin import Spec

__all__ = ["MetricSet", "metric_set_for"]

BASE_LABELS = ("manager", "engine")


@dataclass(eq=False, slots=True)
class MetricSet:
    """Every family of one (registry, prefix), with the label names they were made with.

    Each family's labels are ``manager``, ``engine``, the constant labels, then its own.
    In multiprocess mode the pool status is kept in ``pool_gauges`` (set when the pool
    changes) instead of ``pool_collector`` (read at scrape time), because
    prometheus_client's ``MultiProcessCollector`` reads only what its own metric objects
    write to the shared directory.
    """

    spec: Spec
    checkout: Histogram
    held: Histogram
    timeouts: Counter
    errors: Counter
    transactions: Counter
    transaction_duration: Histogram
    retries: Counter
    lock_wait: Histogram
    locks_not_acquired: Counter
    health_up: Gauge
    healthcheck_duration: Histogram
    pool_collector: PoolCollector | None
    pool_gauges: tuple[Gauge, Gauge, Gauge, Gauge] | None
    collectors: list[Collector] = field(default_factory=list)


_SETS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, MetricSet]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def metric_set_for(registry: CollectorRegistry, spec: Spec) -> MetricSet:
    """The families for ``spec.prefix`` in ``registry``: the existing ones, or new ones.

    Raises:
        ConfigurationError: The families exist with other label names, buckets or
            multiprocess settings, or the names are taken by another collector.
    """
    with _LOCK:
        per_prefix = _SETS.setdefault(registry, {})
        existing = per_prefix.get(spec.prefix)
        if existing is not None:
            if existing.spec != spec:
                raise ConfigurationError(_mismatch(existing.spec, spec))
            return existing
        created = _create(registry, spec)
        per_prefix[spec.prefix] = created
        return created


def _mismatch(have: Spec, want: Spec) -> str:
    name = f"{have.prefix}_postgres_*" if have.prefix else "postgres_*"
    diffs = []
    if have.constant_labels != want.constant_labels:
        diffs.append(
            f"constant label names {list(have.constant_labels)} (asked: "
            f"{list(want.constant_labels)})"
        )
    if have.buckets != want.buckets:
        diffs.append(f"buckets {list(have.buckets)} (asked: {list(want.buckets)})")
    if (have.multiprocess, have.multiprocess_mode) != (want.multiprocess, want.multiprocess_mode):
        diffs.append(
            f"multiprocess={have.multiprocess} mode {have.multiprocess_mode!r} "
            f"(asked: multiprocess={want.multiprocess} mode {want.multiprocess_mode!r})"
        )
    return (
        f"the metrics {name} already exist in this registry with "
        + "; ".join(diffs)
        + ". PostgresMetrics instances sharing a registry and prefix share the metrics, so "
        "they must use the same label names and buckets (label values may differ); "
        "use another prefix or registry for a different set"
    )


def _create(registry: CollectorRegistry, spec: Spec) -> MetricSet:
    prefix = f"{spec.prefix}_postgres_" if spec.prefix else "postgres_"
    base = (*BASE_LABELS, *spec.constant_labels)
    made: list[Collector] = []

    def histogram(name: str, doc: str, *extra: str) -> Histogram:
        metric = Histogram(prefix + name, doc, [*base, *extra], registry=None, buckets=spec.buckets)
        made.append(metric)
        return metric

    def counter(name: str, doc: str, *extra: str) -> Counter:
        metric = Counter(prefix + name, doc, [*base, *extra], registry=None)
        made.append(metric)
        return metric

    health_up = Gauge(
        prefix + "health_up",
        "1 if the last health check of the engine succeeded, else 0",
        base,
        registry=None,
        multiprocess_mode="livemostrecent",
    )
    made.append(health_up)
    pool_collector: PoolCollector | None = None
    pool_gauges: tuple[Gauge, Gauge, Gauge, Gauge] | None = None
    if spec.multiprocess:
        g = [
            Gauge(prefix + name, doc, base, registry=None, multiprocess_mode=spec.multiprocess_mode)
            for name, doc in pool_gauge_specs()
        ]
        pool_gauges = (g[0], g[1], g[2], g[3])
        made.extend(g)
    else:
        pool_collector = PoolCollector(prefix, base)
        made.append(pool_collector)
    metrics = MetricSet(
        spec=spec,
        checkout=histogram(
            "checkout_duration_seconds",
            "Seconds spent waiting for a connection from the pool (checkout), including "
            "opening a new one when the pool grows",
        ),
        held=histogram(
            "connection_held_seconds", "Seconds a connection stayed checked out of the pool"
        ),
        timeouts=counter("timeouts", "Pool checkouts that timed out waiting for a connection"),
        errors=counter(
            "errors",
            "Database errors by SQLSTATE class and fkit error type",
            "sqlstate_class",
            "error",
        ),
        transactions=counter(
            "transactions", "Transactions that ended, by kind and outcome", "kind", "outcome"
        ),
        transaction_duration=histogram(
            "transaction_duration_seconds",
            "Seconds from a transaction's start to its commit or rollback",
            "kind",
        ),
        retries=counter("retries", "Retries scheduled, by the error that caused them", "reason"),
        lock_wait=histogram(
            "lock_wait_seconds", "Seconds spent waiting for a lock, taken or not", "scope"
        ),
        locks_not_acquired=counter("locks_not_acquired", "Locks that could not be taken", "scope"),
        health_up=health_up,
        healthcheck_duration=histogram(
            "healthcheck_duration_seconds", "Seconds each health check took"
        ),
        pool_collector=pool_collector,
        pool_gauges=pool_gauges,
    )
    done: list[Collector] = []
    try:
        for collector in made:
            registry.register(collector)
            done.append(collector)
    except ValueError as exc:  # prometheus_client's DuplicateTimeseries
        for collector in done:
            registry.unregister(collector)
        raise ConfigurationError(
            f"cannot register fkit_metrics' {prefix}* metrics: {exc}. Something other than "
            "fkit_metrics registered these names in the registry; choose another prefix "
            "(PostgresMetrics(prefix=...)) or registry"
        ) from exc
    metrics.collectors = done
    return metrics
