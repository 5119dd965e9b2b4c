"""Garment-aware masking (paper 002 §3.1) with classical segmentation.

The paper masks "non-garment regions (e.g., face, hair, skin)" using semantic segmentation
outputs, then extracts CNN features from the masked image. No segmentation network (nor OpenCV's
GrabCut) is available offline here, so we segment classically, in two switchable steps:

1. **Background removal** — product photos sit on a near-uniform backdrop. The backdrop colour is
   the median of the image's border frame; pixels within ``background_threshold`` (Euclidean,
   RGB 0–255) of it *and connected to the border* (``scipy.ndimage.label``) are background. The
   connectivity test keeps garment parts that happen to share the backdrop's colour but lie
   inside the silhouette. A morphological opening (``open_iterations``) then drops speckles
   left by shadows and gradients on the backdrop. Known limit: a garment of the backdrop's own
   colour (a white shirt on white) touching nothing darker loses most of its area.
2. **Skin removal** — skin pixels are those inside the classic YCbCr box (Chai & Ngan 1999:
   77 ≤ Cb ≤ 127, 133 ≤ Cr ≤ 173) *and* the RGB daylight rule of Kovač et al. 2003
   (R > 95, G > 40, B > 20, max − min > 15, |R − G| > 15, R > G, R > B), which rejects dark
   browns and reds the box alone accepts. After an opening that cuts thin bridges, they are
   removed one connected region at a time: a skin-toned garment (beige, tan, pink) would
   vanish, so a region larger than ``max_skin_fraction`` of the foreground is read as the
   garment's colour and kept; faces, arms and hands are smaller regions and go.

Known limit of colour-based skin detection: skin-toned prints and pastel patterns *inside* a
garment (pale pink, beige) are removed with the skin; hair is not detected.

Masked pixels are filled with ``fill`` (white). If less than ``min_foreground`` of the picture
survives, the mask is judged a failure and the image is kept whole (better unmasked than empty).
``save_before_after`` writes the paper's Figure-2-style comparison (original | mask | masked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage


@dataclass(frozen=True)
class MaskConfig:
    """Switches and thresholds of the two masking steps (module docstring)."""

    enabled: bool = True
    remove_background: bool = True
    remove_skin: bool = True
    background_threshold: float = 30.0
    border: int = 2
    open_iterations: int = 2
    skin_cb: tuple[int, int] = (77, 127)
    skin_cr: tuple[int, int] = (133, 173)
    max_skin_fraction: float = 0.25
    min_foreground: float = 0.01
    fill: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self) -> None:
        if self.background_threshold < 0 or self.border < 1:
            raise ValueError("background_threshold must be >= 0 and border >= 1")
        if not 0 <= self.max_skin_fraction <= 1 or not 0 <= self.min_foreground < 1:
            raise ValueError("max_skin_fraction must be in [0, 1], min_foreground in [0, 1)")


def _rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        array = image
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 RGB array, got shape {array.shape}")
        return array.astype(np.float32)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image or an RGB array, got {type(image).__name__}")
    return np.asarray(image.convert("RGB"), dtype=np.float32)


def background_mask(rgb: np.ndarray, threshold: float = 30.0, border: int = 2) -> np.ndarray:
    """True where a pixel is backdrop: close to the border's median colour and connected to
    the border through such pixels."""
    h, w, _ = rgb.shape
    frame = np.ones((h, w), dtype=bool)
    frame[border:h - border, border:w - border] = False
    backdrop = np.median(rgb[frame], axis=0)
    close = np.linalg.norm(rgb - backdrop, axis=2) <= threshold
    labels, _ = ndimage.label(close)
    touching = np.unique(labels[frame & close])
    return np.isin(labels, touching[touching > 0])


def skin_mask(rgb: np.ndarray, cb: tuple[int, int] = (77, 127),
              cr: tuple[int, int] = (133, 173)) -> np.ndarray:
    """True where a pixel is skin-toned: YCbCr box (ITU-R BT.601, as PIL converts) and the
    Kovač RGB rule (module docstring)."""
    ycbcr = np.asarray(Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).convert("YCbCr"))
    cb_ch, cr_ch = ycbcr[..., 1], ycbcr[..., 2]
    box = (cb_ch >= cb[0]) & (cb_ch <= cb[1]) & (cr_ch >= cr[0]) & (cr_ch <= cr[1])
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    kovac = ((r > 95) & (g > 40) & (b > 20) & (spread > 15) & (np.abs(r - g) > 15)
             & (r > g) & (r > b))
    return box & kovac


def garment_mask(image: Image.Image | np.ndarray, config: MaskConfig | None = None) -> np.ndarray:
    """Boolean H×W mask, True on the garment (see the module docstring for the steps)."""
    cfg = config or MaskConfig()
    rgb = _rgb(image)
    keep = np.ones(rgb.shape[:2], dtype=bool)
    if not cfg.enabled:
        return keep
    if cfg.remove_background:
        keep &= ~background_mask(rgb, cfg.background_threshold, cfg.border)
        if cfg.open_iterations:
            keep = ndimage.binary_opening(keep, iterations=cfg.open_iterations)
    if cfg.remove_skin and keep.any():
        skin = skin_mask(rgb, cfg.skin_cb, cfg.skin_cr) & keep
        if cfg.open_iterations:  # cut thin bridges (outlines, prints) between skin regions
            skin = ndimage.binary_opening(skin, iterations=cfg.open_iterations)
        labels, count = ndimage.label(skin)
        if count:
            sizes = np.bincount(labels.ravel(), minlength=count + 1)
            small = sizes <= cfg.max_skin_fraction * keep.sum()
            small[0] = False
            keep &= ~small[labels]
    if keep.mean() < cfg.min_foreground:
        return np.ones_like(keep)
    return keep


def apply_mask(image: Image.Image | np.ndarray, config: MaskConfig | None = None) -> Image.Image:
    """The masked image: non-garment pixels replaced by ``config.fill``."""
    cfg = config or MaskConfig()
    rgb = _rgb(image)
    keep = garment_mask(rgb, cfg)
    out = np.where(keep[..., None], rgb, np.asarray(cfg.fill, dtype=np.float32))
    return Image.fromarray(out.clip(0, 255).astype(np.uint8), "RGB")


def save_before_after(image: Image.Image | np.ndarray, path: str | Path,
                      config: MaskConfig | None = None) -> Path:
    """Write ``original | mask | masked`` side by side as a PNG (paper 002, Figure 2)."""
    rgb = _rgb(image)
    keep = garment_mask(rgb, config)
    original = Image.fromarray(rgb.clip(0, 255).astype(np.uint8), "RGB")
    mask = Image.fromarray((keep * 255).astype(np.uint8), "L").convert("RGB")
    masked = apply_mask(rgb, config)
    h, w = keep.shape
    sheet = Image.new("RGB", (3 * w + 8, h), (90, 90, 90))
    for k, panel in enumerate((original, mask, masked)):
        sheet.paste(panel, (k * (w + 4), 0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG")
    return out
