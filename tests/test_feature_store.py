"""Feature store: batched catalog extraction, versioned layout, FAISS neighbours, cold start."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from models.catalog import CatalogItem, save_catalog
from models.feature_store import (
    Encoders,
    FeatureStore,
    build_store,
    encode_items,
)
from tests.fusion_toy import tiny_extract

torch.set_num_threads(1)
CONFIG = tiny_extract(batch_size=3)


def _catalog(directory) -> list[CatalogItem]:
    colours = {"red": (220, 30, 30), "blue": (30, 40, 210), "green": (30, 180, 60)}
    items = []
    for name, rgb in colours.items():
        for copy in range(2):
            image = Image.new("RGB", (64, 64), (245, 245, 245))
            ImageDraw.Draw(image).rectangle((14, 10, 50, 56), fill=rgb)
            image.save(directory / f"{name}{copy}.png")
            items.append(CatalogItem(item_id=f"{name}-{copy}", title=f"{name} cotton t-shirt",
                                     category="Tshirts", group="Topwear",
                                     image=f"{name}{copy}.png"))
    items.append(CatalogItem(item_id="noimg", title="black leather boots", category="Boots",
                             group="Shoes"))
    (directory / "broken.jpg").write_bytes(b"not a jpeg")
    items.append(CatalogItem(item_id="broken", title="gold hoop earrings", category="Earrings",
                             group="Accessories", image="broken.jpg"))
    save_catalog(directory, items)
    return items


@pytest.fixture(scope="module")
def encoders() -> Encoders:
    return Encoders.load(CONFIG)


@pytest.fixture(scope="module")
def store(tmp_path_factory, encoders) -> FeatureStore:
    catalog = tmp_path_factory.mktemp("catalog")
    _catalog(catalog)
    return build_store(catalog, tmp_path_factory.mktemp("features"), CONFIG, progress=False,
                       encoders=encoders)


def test_layout_and_missing_images(store: FeatureStore) -> None:
    path = store.path
    assert path.name.startswith("features-")
    for name in ("visual.npy", "text.npy", "present.npy", "items.npy", "ids.json", "meta.json",
                 "index.faiss"):
        assert (path / name).is_file(), name
    meta = json.loads((path / "meta.json").read_text())
    assert meta["n_items"] == 8 and meta["missing_images"] == 2
    assert meta["visual_dim"] == 1280 and meta["text_dim"] == 384 and meta["fused_dim"] == 600
    assert store.visual.shape == (8, 1280) and store.fused.shape == (8, 600)
    missing = [store.rows["noimg"], store.rows["broken"]]
    assert not store.present[missing].any() and store.present.sum() == 6
    assert np.all(store.visual[missing] == 0)


def test_load_round_trip_and_latest_version(store: FeatureStore, encoders, tmp_path) -> None:
    loaded = FeatureStore.load(store.path.parent)
    assert loaded.ids == store.ids and loaded.version == store.version
    assert np.array_equal(loaded.fused, store.fused)
    newer = build_store(store.meta["catalog"], store.path.parent, CONFIG, limit=2,
                        progress=False, encoders=encoders)
    assert newer.version > store.version
    assert FeatureStore.load(store.path.parent).ids == newer.ids == ["red-0", "red-1"]
    with pytest.raises(FileNotFoundError, match="stylestream features"):
        FeatureStore.load(tmp_path)


def test_encoding_is_batch_independent(store: FeatureStore, encoders) -> None:
    from models.catalog import load_catalog

    items = list(load_catalog(store.meta["catalog"]).values())
    alone, _ = encode_items(items[2:3], store.meta["catalog"], encoders)
    assert np.allclose(alone.visual.numpy()[0], store.visual[2], atol=1e-4)
    assert np.allclose(alone.text.numpy()[0], store.text[2], atol=1e-4)


def test_neighbours_find_the_same_garment(store: FeatureStore) -> None:
    found = store.neighbours(["red-0", "blue-1"], k=3)
    assert found["red-0"][0][0] == "red-1" and found["blue-1"][0][0] == "blue-0"
    assert all(item != "red-0" for item, _ in found["red-0"]) and len(found["red-0"]) == 3
    scores = [s for _, s in found["red-0"]]
    assert scores == sorted(scores, reverse=True) and scores[0] <= 1.0 + 1e-5
    assert store.neighbours(["nope", "red-0"], k=2)["nope"] == []  # unknown: nothing, no error
    with pytest.raises(ValueError, match="k must be"):
        store.neighbours(["red-0"], k=0)


def test_add_items_online_cold_start(store: FeatureStore, tmp_path) -> None:
    store = FeatureStore.load(store.path)  # a private copy
    near_green = store.fused[store.rows["green-0"]] * 1.01
    store.add_items(["new-green"], near_green[None, :])
    # the two green items share one picture and text, so they tie with the newcomer
    assert {i for i, _ in store.neighbours(["new-green"], k=2)["new-green"]} == \
        {"green-0", "green-1"}
    assert "new-green" in {i for i, _ in store.neighbours(["green-0"], k=2)["green-0"]}
    # replacing an existing id moves it in the index too
    store.add_items(["new-green"], store.fused[store.rows["blue-0"]][None, :])
    assert "new-green" in {i for i, _ in store.neighbours(["blue-0"], k=2)["blue-0"]}
    assert "new-green" not in {i for i, _ in store.neighbours(["green-0"], k=2)["green-0"]}
    reloaded = FeatureStore.load(store.save(tmp_path / "copy"))
    assert "new-green" in reloaded.rows and len(reloaded.ids) == 9
    with pytest.raises(ValueError, match="add_items needs fused vectors"):
        store.add_items(["x"], np.zeros((1, 10)))


def test_features_and_train_commands_end_to_end(tmp_path, capsys) -> None:
    from models.fusion import load_checkpoint
    from scripts.cli import main

    catalog = tmp_path / "catalog"
    catalog.mkdir()
    items = _catalog(catalog)
    features = tmp_path / "features"
    assert main(["features", "--catalog", str(catalog), "--out", str(features),
                 "--backbone", "efficientnet_lite0", "--image-size", "64",
                 "--batch-size", "4"]) == 0
    assert "8 items (2 without image)" in capsys.readouterr().out
    events = tmp_path / "events.csv"
    rows = ["user_id,item_id,behavior,timestamp"]
    for u in range(6):
        for k, item in enumerate(items[:6]):
            behavior = ("view", "click", "cart", "purchase")[(u + k) % 4]
            rows.append(f"u{u},{item.item_id},{behavior},{1_700_000_000 + 3600 * (u + k)}")
    events.write_text("\n".join(rows) + "\n")
    model = tmp_path / "model"
    assert main(["train", "--events", str(events), "--features", str(features), "--out",
                 str(model), "--epochs", "2", "--lr", "1e-3"]) == 0
    checkpoint = load_checkpoint(model / "model.pt")
    assert checkpoint.users == [f"u{u}" for u in range(6)]
    assert (model / "loss.png").is_file()
    latest = FeatureStore.load(features)
    assert latest.meta["fused_by"] == checkpoint.version
    assert latest.meta["refused_from"] != latest.version
    # bad input: a clear message and exit code 2, no traceback
    events.write_text("user_id,item_id,behavior,timestamp\nu1,red-0,teleport,1700000000\n")
    assert main(["train", "--events", str(events), "--features", str(features), "--out",
                 str(model)]) == 2
    assert "teleport" in capsys.readouterr().err
    assert main(["features", "--catalog", str(tmp_path / "nowhere"), "--out",
                 str(features), "--backbone", "efficientnet_lite0"]) == 2
