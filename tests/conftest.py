"""Fixtures shared by every test: a fresh store per test, in-process and real-socket servers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

with warnings.catch_warnings():
    # Starlette's TestClient asks for the `httpx2` fork, which is not on PyPI; httpx works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from persona.api import create_app
from persona.config import Config, load_config
from persona.engine import Engine
from tests.support.backends import BACKENDS, postgres_schema
from tests.support.live import LiveServer, start_server

WRITE_KEY = "pw_test_write_key"
SECRET_KEY = "ps_test_secret_key"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Modules marked `backends` run each test on every store backend (the contract suite)."""
    if metafunc.definition.get_closest_marker("backends") and "store_url" in metafunc.fixturenames:
        metafunc.parametrize("store_url", BACKENDS, indirect=True)


@pytest.fixture
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None for the embedded store in the test's data directory, else a PostgreSQL URL with a fresh schema."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
def config(tmp_path: Path, store_url: str | None) -> Config:
    return load_config(env={}, data_dir=tmp_path / "data", store=store_url, write_key=WRITE_KEY,
                       secret_key=SECRET_KEY)


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    with Engine.open(config) as engine:
        yield engine


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    """The ASGI app in-process; the processor does not run unless a test drives it."""
    with TestClient(create_app(engine), raise_server_exceptions=True) as client:
        client.auth = (WRITE_KEY, "")
        yield client


@pytest.fixture
def reader_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRET_KEY}"}


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """`persona serve` in a child process on a free port, with the processor running."""
    server = start_server(tmp_path / "live", WRITE_KEY, SECRET_KEY)
    try:
        yield server
    finally:
        server.stop()
