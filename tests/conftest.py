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
    """The product's resolver (``STYLESTREAM_DATA``), defaulting to ``<repo>/../shared/data``
    for tests; a clear failure when absent."""
    from models.datasets import DatasetError, data_dir

    try:
        return data_dir(os.environ.get("STYLESTREAM_DATA") or REPO.parent / "shared" / "data")
    except DatasetError as exc:
        pytest.fail(f"{exc}: set STYLESTREAM_DATA")


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


@pytest.fixture(scope="module", params=["single", "cluster"])
def any_redis(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServices]:
    """One Redis per mode for the module: a single server, then a real 3-master Redis Cluster
    (same ``redis-server`` binary, cluster mode); tests using it run once in each mode."""
    from scripts.embedded_cluster import start_services_with_cluster

    start = start_services if request.param == "single" else start_services_with_cluster
    with start(partitions=1, workdir=str(tmp_path_factory.mktemp("redis"))) as svc:
        yield svc


@pytest.fixture
def empty_redis(any_redis: EmbeddedServices) -> EmbeddedServices:
    """:func:`any_redis`, emptied and with no scripts loaded (each test starts clean)."""
    from tests.streaming_helpers import flush_redis

    flush_redis(any_redis.redis_url)
    return any_redis


@pytest.fixture(autouse=True)
def _forget_registered_secrets() -> Iterator[None]:
    """Each test starts with no registered secret: a test that loads settings with a one-letter
    password must not mask that letter in every later test's output."""
    from streams import redact

    yield
    with redact._lock:
        redact._secrets.clear()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """The fusion network trained on :func:`tests.fusion_toy.toy_problem`, saved as a
    checkpoint beside a feature store: ``(checkpoint, store_dir, TrainResult, ItemFeatures)``."""
    import numpy as np

    from models.feature_store import FeatureStore
    from models.fusion import save_checkpoint
    from models.training import TrainConfig, train
    from tests.fusion_toy import SMALL, toy_problem

    matrix, features = toy_problem()
    result = train(matrix, features, TrainConfig(lr=3e-3, epochs=12, batch_size=32, seed=1,
                                                 progress=False), SMALL)
    root = tmp_path_factory.mktemp("scorer")
    checkpoint = save_checkpoint(root / "model.pt", result.model, version="toy-1",
                                 users=result.users)
    store_dir = root / "features" / "features-toy"
    meta = {"format": "stylestream-features/1", "version": "toy"}
    fused = np.zeros((len(features.ids), 600), np.float32)
    store = FeatureStore(store_dir, meta, features.ids, features.visual.numpy(),
                         features.text.numpy(), features.present.numpy(), fused).save(store_dir)
    return checkpoint, store, result, features
