"""Shared fixtures: real embedded services (Tansu broker + Redis over sockets) and the data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.embedded import EmbeddedServices, start_services

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``STYLESTREAM_DATA``, else ``<repo>/../shared/data``; a clear failure when absent."""
    path = Path(os.environ.get("STYLESTREAM_DATA") or REPO.parent / "shared" / "data")
    if not path.is_dir():
        pytest.fail(f"data directory {path} not found: set STYLESTREAM_DATA")
    return path


@pytest.fixture
def services(tmp_path: Path) -> Iterator[EmbeddedServices]:
    """A fresh broker + Redis pair for one test (starts in well under a second)."""
    with start_services(partitions=2, workdir=str(tmp_path / "services")) as svc:
        yield svc


@pytest.fixture(scope="module")
def module_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    with start_services(partitions=2,
                        workdir=str(tmp_path_factory.mktemp("services"))) as svc:
        yield svc


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Iterator[None]:
    """Each test starts with no registered secret: a test that loads settings with a one-letter
    password must not mask that letter in every later test's output."""
    from streams import redact

    yield
    with redact._lock:
        redact._secrets.clear()
