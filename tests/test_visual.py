"""Visual encoder (paper 000 Eq. 5–9): preprocessing, backbones, head, weights, fine-tuning."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from models.visual import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VisualEncoder,
    VisualModelError,
    build_backbone,
    fine_tune,
    images_to_batch,
    load_image,
    preprocess,
)

torch.set_num_threads(1)


def _images(n: int = 4, size: int = 64) -> list[Image.Image]:
    out = []
    for i in range(n):
        image = Image.new("RGB", (size, size + 16), (40 * i, 200 - 30 * i, 90))
        for x in range(0, size, 8):  # a stripe pattern that differs per image
            for y in range(i, size, 4 + i):
                image.putpixel((x, y), (255, 255, 255))
        out.append(image)
    return out


def test_preprocess_resizes_and_standardises_eq5_eq6() -> None:
    white = Image.new("RGB", (90, 50), (255, 255, 255))
    for variant in ("paper", "crop"):
        tensor = preprocess(variant)(white)
        assert tensor.shape == (3, 224, 224)
        expected = [(1.0 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)]
        assert torch.allclose(tensor.mean(dim=(1, 2)), torch.tensor(expected), atol=1e-4)


def test_crop_variant_keeps_aspect_ratio_paper_variant_squashes() -> None:
    image = Image.new("RGB", (200, 100), (0, 0, 0))
    for x in range(100):  # left half white
        for y in range(100):
            image.putpixel((x, y), (255, 255, 255))
    squashed = preprocess("paper", 32)(image)
    cropped = preprocess("crop", 32)(image)
    # squashing keeps half the columns white; the center crop of a 2:1 image shows about a
    # quarter of the width on each side of the centre line
    assert squashed[0, :, :14].min() > 1.5 and squashed[0, :, 18:].max() < -1.5
    assert cropped[0, :, :12].min() > 1.5 and cropped[0, :, 20:].max() < -1.5
    with pytest.raises(VisualModelError, match="variant"):
        preprocess("bogus")


@pytest.mark.parametrize("backbone,weights,dim", [("resnet50", None, 2048),
                                                  ("efficientnet_lite0", "imagenet", 1280)])
def test_encoder_outputs_300d_tokens(backbone: str, weights: str | None, dim: int) -> None:
    torch.manual_seed(0)
    encoder = VisualEncoder(backbone, weights).eval()
    batch = images_to_batch(_images(), preprocess("paper", 64))
    with torch.no_grad():
        pooled = encoder.pooled(batch)
        tokens = encoder(batch)
    assert pooled.shape == (4, dim) and tokens.shape == (4, 300)
    assert torch.isfinite(tokens).all()
    assert not torch.allclose(tokens[0], tokens[1])  # different images, different tokens


def test_packaged_efficientnet_weights_are_loaded() -> None:
    batch = images_to_batch(_images(2), preprocess("paper", 64))
    with torch.no_grad():
        pretrained_a = VisualEncoder("efficientnet_lite0", "imagenet").eval().pooled(batch)
        pretrained_b = VisualEncoder("efficientnet_lite0", "imagenet").eval().pooled(batch)
        untrained = VisualEncoder("efficientnet_lite0", None).eval().pooled(batch)
    assert torch.allclose(pretrained_a, pretrained_b)  # weights, not the random init
    assert not torch.allclose(pretrained_a, untrained)


def test_local_state_dict_path_round_trip(tmp_path) -> None:
    from torchvision.models import densenet121

    torch.manual_seed(3)
    reference = densenet121(weights=None)
    torch.save(reference.state_dict(), tmp_path / "densenet.pth")
    loaded = build_backbone("densenet121", tmp_path / "densenet.pth").eval()
    batch = images_to_batch(_images(2), preprocess("paper", 64))
    with torch.no_grad():
        expected = torch.relu(reference.eval().features(batch))
        assert torch.allclose(loaded(batch), expected, atol=1e-5)


def test_bad_backbone_and_weights_give_clear_errors(tmp_path) -> None:
    with pytest.raises(VisualModelError, match="unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(VisualModelError, match="has no weights"):
        build_backbone("resnet50", "NOT_A_WEIGHT")
    with pytest.raises(VisualModelError, match="does not exist"):
        build_backbone("vgg16", tmp_path / "missing.pth")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(VisualModelError, match="cannot read image"):
        load_image(bad)


def test_fine_tune_on_catalog_labels_lowers_loss() -> None:
    encoder = VisualEncoder("efficientnet_lite0", "imagenet")
    images = _images(6)
    labels = ["Tshirts", "Jeans"] * 3
    result = fine_tune(encoder, images, labels, epochs=15, lr=1e-3, batch_size=6,
                       train_backbone=False, image_size=64)
    assert result.classes == ["Jeans", "Tshirts"]
    assert result.losses[-1] < result.losses[0]
    assert not encoder.training
