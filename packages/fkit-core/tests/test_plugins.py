"""Plugin discovery (through real installed distributions) and plugin set-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import pytest
from fkit_sample_plugin import SamplePlugin
from sqlalchemy import JSON, bindparam, event, text

from fkit_core import AsyncSessionManager, discover_plugins
from fkit_core._plugins import check_requires_core, resolve_plugins
from fkit_core.errors import PluginError
from fkit_core.events import EngineCreated, ManagerStarted

if TYPE_CHECKING:
    from pathlib import Path


def test_the_installed_sample_plugin_is_discovered_with_its_distribution() -> None:
    found = {p.name: p for p in discover_plugins()}
    assert "sample" in found
    sample = found["sample"]
    assert sample.distribution == "fkit-sample-plugin"
    assert sample.value == "fkit_sample_plugin:plugin"
    assert sample.error is None
    assert isinstance(sample.plugin, SamplePlugin)
    assert [p.name for p in discover_plugins()] == sorted(found)


def test_discovery_runs_once_per_process() -> None:
    assert discover_plugins() is discover_plugins()


@pytest.mark.asyncio
async def test_autoload_sets_up_installed_plugins(db_url: str) -> None:
    async with AsyncSessionManager(db_url) as manager:
        names = [p.name for p in manager.plugins]
        assert "sample" in names
        assert names == sorted(names)
        sample = next(p for p in manager.plugins if p.name == "sample")
        assert isinstance(sample, SamplePlugin)
        assert manager in sample.managers
        started = [
            e for e in sample.events if isinstance(e, ManagerStarted) and e.manager == "default"
        ]
        assert started
        assert "sample" in started[-1].plugins


@pytest.mark.asyncio
async def test_an_explicit_plugin_replaces_the_installed_one_of_the_same_name(db_url: str) -> None:
    mine = SamplePlugin()
    async with AsyncSessionManager(db_url, plugins=[mine], autoload=True) as manager:
        sample = [p for p in manager.plugins if p.name == "sample"]
        assert sample == [mine]
        assert mine.managers == [manager]


@pytest.mark.parametrize(
    ("env", "expect_sample"),
    [
        ({"FKIT_DISABLED_PLUGINS": "sample"}, False),
        ({"FKIT_DISABLED_PLUGINS": "other, sample"}, False),
        ({"FKIT_DISABLED_PLUGINS": "*"}, False),
        ({"FKIT_DISABLED_PLUGINS": "other"}, True),
        ({"FKIT_DISABLE_PLUGIN_AUTOLOAD": "1"}, False),
        ({"FKIT_DISABLE_PLUGIN_AUTOLOAD": "0"}, True),
    ],
)
def test_environment_controls(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expect_sample: bool
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    names = [p.name for p in resolve_plugins([], autoload=None)]
    assert ("sample" in names) is expect_sample


def test_autoload_false_loads_only_explicit_plugins() -> None:
    mine = SamplePlugin()
    mine.name = "mine"
    assert resolve_plugins([mine], autoload=False) == [mine]


def test_requires_core_is_checked() -> None:
    class TooNew(SamplePlugin):
        name = "too-new"
        requires_core = ">=0.2,<0.3"

    with pytest.raises(PluginError, match=r"requires fkit-core >=0.2,<0.3, but 0.1.0 is installed"):
        resolve_plugins([TooNew()], autoload=False)


@pytest.mark.parametrize(
    ("spec", "version", "ok"),
    [
        (">=0.1,<0.2", "0.1.0", True),
        (">=0.1,<0.2", "0.2.0", False),
        ("==0.1.0", "0.1.0", True),
        ("!=0.1.0", "0.1.0", False),
        ("~=0.1.2", "0.1.9", True),
        ("~=0.1.2", "0.2.0", False),
        ("~=1.4", "1.9.0", True),
        ("~=1.4", "2.0.0", False),
        (">0.1", "0.1.0", False),
        ("<=0.1", "0.1.0", True),
    ],
)
def test_version_ranges(spec: str, version: str, ok: bool) -> None:
    assert check_requires_core(spec, version) is ok


def test_malformed_requires_core_is_a_clear_error() -> None:
    with pytest.raises(PluginError, match="malformed requires_core clause 'banana'"):
        check_requires_core("banana")


def test_two_explicit_plugins_with_one_name_are_refused() -> None:
    with pytest.raises(PluginError, match="two plugins named 'sample'"):
        resolve_plugins([SamplePlugin(), SamplePlugin()], autoload=False)


class OptionsPlugin:
    """Contributes an engine option in setup, then attaches a pool event per engine."""

    name = "options"

    def __init__(self) -> None:
        self.engines_at_setup: int | None = None
        self.connects = 0
        self.created: list[str] = []

    def setup(self, manager: AsyncSessionManager) -> None:
        self.engines_at_setup = len(manager._engines)
        manager.bus.add_engine_options_hook(self._options)
        manager.bus.subscribe(EngineCreated, self._attach)

    def _options(self, name: str, role: str, options: dict[str, Any]) -> None:
        options["json_serializer"] = lambda value: json.dumps(value, sort_keys=True)

    def _attach(self, created: EngineCreated) -> None:
        self.created.append(f"{created.engine_name}/{created.role}")

        def on_connect(*_: object) -> None:
            self.connects += 1

        event.listen(created.engine.sync_engine.pool, "connect", on_connect)


@pytest.mark.asyncio
async def test_setup_runs_before_engines_and_contributes_engine_options(db_url: str) -> None:
    plugin = OptionsPlugin()
    async with AsyncSessionManager(db_url, plugins=[plugin], autoload=False) as manager:
        assert plugin.engines_at_setup == 0
        assert plugin.created == ["primary/primary"]
        # The plugin's serializer sorts keys; the server's json type keeps the text as sent.
        query = text("SELECT CAST(:v AS text)").bindparams(bindparam("v", type_=JSON))
        async with manager.get_transaction() as session:
            value = (await session.execute(query, {"v": {"b": 1, "a": 2}})).scalar()
        assert value == '{"a": 2, "b": 1}'
        assert manager.engine.dialect._json_serializer is not None  # type: ignore[attr-defined]
        assert plugin.connects >= 1


@pytest.mark.asyncio
async def test_a_plugin_that_fails_to_set_up_fails_the_start_naming_it(db_url: str) -> None:
    class Broken:
        name = "broken"

        def setup(self, manager: AsyncSessionManager) -> None:
            raise RuntimeError("no config")

    manager = AsyncSessionManager(db_url, plugins=[Broken()], autoload=False)
    with pytest.raises(PluginError, match="'broken' failed to set up: no config"):
        await manager.start()
    assert manager.state == "new"
    assert manager._engines == {}


def _fake_distribution(site: Path, dist: str, module: str, body: str, entry: str) -> None:
    """Write an installed distribution (dist-info + module) that importlib.metadata finds."""
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fkit.plugins]\n{entry} = {module}:plugin\n")
    (site / f"{module}.py").write_text(textwrap.dedent(body))


def _run_discovery(site: Path) -> dict[str, Any]:
    code = textwrap.dedent(
        """
        import json, warnings
        from fkit_core import discover_plugins
        from fkit_core.errors import PluginConflictError
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                found = [[p.name, p.distribution, p.error] for p in discover_plugins()]
                error = None
            except PluginConflictError as exc:
                found, error = [], str(exc)
        messages = [str(w.message) for w in caught]
        print(json.dumps({"found": found, "error": error, "warnings": messages}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_two_distributions_claiming_one_name_is_an_error_naming_both(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        "fkit-impostor",
        "fkit_impostor",
        "class P:\n    name='sample'\n    def setup(self, m): pass\nplugin = P()\n",
        "sample",
    )
    result = _run_discovery(tmp_path)
    assert result["error"] is not None
    assert "fkit-sample-plugin" in result["error"]
    assert "fkit-impostor" in result["error"]
    assert "'sample'" in result["error"]


def test_a_plugin_whose_import_fails_is_skipped_with_a_warning_naming_the_missing_package(
    tmp_path: Path,
) -> None:
    _fake_distribution(
        tmp_path,
        "fkit-needs-extra",
        "fkit_needs_extra",
        "import not_installed_dependency_xyz\nplugin = None\n",
        "needy",
    )
    result = _run_discovery(tmp_path)
    assert result["error"] is None
    found = {name: (dist, error) for name, dist, error in result["found"]}
    assert found["sample"][1] is None  # the good plugin still loads
    dist, error = found["needy"]
    assert dist == "fkit-needs-extra"
    assert "not_installed_dependency_xyz" in error
    assert any(
        "not_installed_dependency_xyz" in w and "pip install" in w for w in result["warnings"]
    )


def test_plugins_are_ordered_by_name_whatever_the_order_given() -> None:
    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        def setup(self, manager: AsyncSessionManager) -> None:
            pass

    plugins = resolve_plugins([Named("zeta"), Named("alpha"), Named("mid")], autoload=False)
    assert [p.name for p in plugins] == ["alpha", "mid", "zeta"]


def test_a_plugin_that_raises_while_loading_is_skipped_not_fatal(tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        "fkit-broken-attr",
        "fkit_broken_attr",
        "raise RuntimeError('plugin module exploded')\n",
        "exploding",
    )
    result = _run_discovery(tmp_path)
    assert result["error"] is None
    found = {name: (dist, error) for name, dist, error in result["found"]}
    assert found["sample"][1] is None
    assert "RuntimeError: plugin module exploded" in found["exploding"][1]
    assert any("fkit-broken-attr" in w for w in result["warnings"])
