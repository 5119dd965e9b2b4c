"""Settings of the trend study: every knob once, with the study's defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluation import RESULTS_DIR

BACKBONE_LABELS: dict[str, str] = {
    "resnet50": "ResNet-50 (untrained)", "densenet121": "DenseNet-121 (untrained)",
    "vgg16": "VGG16 (untrained)", "efficientnet_lite0": "EfficientNet-Lite0 (ImageNet)",
    "histogram": "Colour histogram",
}
DEFAULT_BACKBONES = ("resnet50", "densenet121", "vgg16", "efficientnet_lite0", "histogram")


@dataclass(frozen=True)
class TrendStudyConfig:
    """Every knob of the study (defaults: CI-sized, a few minutes on 2 CPUs)."""

    data: Path
    out: Path = RESULTS_DIR / "trend"
    items: int = 300
    image_size: int = 112
    users: int = 50
    max_purchases: int = 5
    seeds: int = 5
    k: int = 5
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    main_backbone: str = "efficientnet_lite0"
    alpha: float = 0.5
    beta: float = 0.5
    gamma: float = 0.0
    p: int = 2
    mask: bool = True
    weights_dir: Path | None = None
    progress: bool = True
    sample_seed: int = 0
    drift: float = 0.01

    def __post_init__(self) -> None:
        unknown = [b for b in self.backbones if b not in BACKBONE_LABELS]
        if unknown:
            raise StudyError(f"unknown backbone(s) {unknown}; choose from "
                             f"{list(BACKBONE_LABELS)}")
        if self.main_backbone not in self.backbones:
            raise StudyError(f"--main-backbone {self.main_backbone} is not among "
                             f"{self.backbones}")
        if self.items < 20 or self.image_size < 32:
            raise StudyError("--items must be >= 20 and --image-size >= 32")
        if min(self.users, self.seeds, self.k, self.max_purchases) < 1:
            raise StudyError("--users, --seeds, k and max_purchases must be >= 1")


class StudyError(ValueError):
    """The study cannot run with these inputs; the message says why."""
