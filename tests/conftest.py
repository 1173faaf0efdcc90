"""Shared fixtures: migrated databases on SQLite and on a real PostgreSQL (skipped visibly)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from monitor.store.engine import make_engine, normalise_url
from monitor.store.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
PEER_CORPORA = ROOT.parent / "shared" / "peer-corpora"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"

pytest_plugins = ["tests.feedserver"] if (Path(__file__).parent / "feedserver.py").exists() else []


@pytest.fixture(autouse=True)
def _engines_closed_after_each_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every Engine the program makes during a test is disposed when the test ends, so its
    pooled connections close then, not whenever the garbage collector finds them (Python
    3.13 reports such SQLite connections as unclosed, in whichever test happens to run)."""
    import monitor.store.engine as engine_module

    made: list[Engine] = []

    def recorded(*args: object, **kwargs: object) -> Engine:
        engine = create_engine(*args, **kwargs)  # type: ignore[call-overload]
        made.append(engine)
        return engine  # type: ignore[no-any-return]

    monkeypatch.setattr(engine_module, "create_engine", recorded)
    yield
    for engine in made:
        engine.dispose()


def _pg_admin_url() -> str:
    return os.environ.get("MONITOR_TEST_DATABASE_URL") or DEFAULT_PG


def _pg_reason() -> str | None:
    url = normalise_url(_pg_admin_url())
    try:
        probe = create_engine(url, connect_args={"connect_timeout": 3})
        with probe.connect():
            pass
        probe.dispose()
    except OperationalError as e:
        return f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {e.orig}"
    return None


_PG_SKIP_REASON = _pg_reason()


@pytest.fixture(scope="session")
def pg_database_url(worker_id: str) -> Iterator[str]:
    """A database of its own for this test worker on the PostgreSQL under test."""
    if _PG_SKIP_REASON:
        pytest.skip(_PG_SKIP_REASON)
    admin_url = make_url(normalise_url(_pg_admin_url()))
    name = f"monitor_test_{worker_id}_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield admin_url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _fresh_pg(url: str) -> Engine:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    url: str = request.getfixturevalue("pg_database_url")
    _fresh_pg(url).dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated Engine, on SQLite and on PostgreSQL."""
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite Engine, for tests that are not about the backend."""
    eng = make_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()
