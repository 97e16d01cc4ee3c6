"""Constructor validation: what Prometheus would refuse is refused early, with the fix named."""

from __future__ import annotations

from typing import Any

import pytest

from fkit_core.errors import ConfigurationError
from fkit_metrics import DEFAULT_BUCKETS, PostgresMetrics


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"prefix": "my-app"}, "not a valid Prometheus metric name"),
        ({"prefix": "1app"}, "not a valid Prometheus metric name"),
        ({"labels": {"bad-name": "x"}}, "label name 'bad-name' is not valid"),
        ({"labels": {"__reserved": "x"}}, "is not valid"),
        ({"labels": {"engine": "x"}}, "label 'engine' is set by fkit_metrics itself"),
        ({"labels": {"manager": "x"}}, "set by fkit_metrics itself"),
        ({"labels": {"env": 3}}, "label values must be strings"),
        ({"service_name": "a", "labels": {"service": "b"}}, "pass one of them"),
        ({"buckets": []}, "non-empty, strictly increasing"),
        ({"buckets": [1.0, 0.5]}, "non-empty, strictly increasing"),
        ({"buckets": ["soon"]}, "numbers of seconds"),
        ({"multiprocess_mode": "average"}, "multiprocess_mode 'average' is not one of"),
    ],
)
def test_invalid_options_raise_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PostgresMetrics(**options)


def test_defaults() -> None:
    metrics = PostgresMetrics()
    assert (metrics.prefix, metrics.service_name, metrics.labels) == ("fkit", None, {})
    assert metrics.buckets == DEFAULT_BUCKETS
    assert metrics.multiprocess_mode == "livesum"
    assert metrics.name == "prometheus"
    assert metrics.requires_core == ">=0.1,<0.2"


def test_service_name_is_the_service_label_before_the_other_constant_labels() -> None:
    metrics = PostgresMetrics(
        service_name="identity", labels={"zone": "b", "environment": "prod"}, buckets=[1, 2]
    )
    assert list(metrics.constant_labels.items()) == [
        ("service", "identity"),
        ("environment", "prod"),
        ("zone", "b"),
    ]
    assert metrics.buckets == (1.0, 2.0)
    assert repr(metrics) == (
        "PostgresMetrics(prefix='fkit', service_name='identity', "
        "labels={'zone': 'b', 'environment': 'prod'})"
    )
