"""Garment-aware masking (paper 002 §3.1): backdrop and skin removal on synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from models.masking import MaskConfig, apply_mask, garment_mask, save_before_after

SKIN = (224, 172, 140)


def picture(background=(240, 240, 236), garment=(30, 60, 160), with_face=False) -> Image.Image:
    image = Image.new("RGB", (96, 96), background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((24, 36, 72, 90), fill=garment)
    # a backdrop-coloured pocket inside the garment must stay garment
    draw.rectangle((44, 60, 52, 68), fill=background)
    if with_face:
        draw.ellipse((36, 6, 60, 34), fill=SKIN)
    return image


def test_uniform_background_is_removed() -> None:
    keep = garment_mask(picture(), MaskConfig(remove_skin=False))
    truth = np.zeros((96, 96), dtype=bool)
    truth[36:91, 24:73] = True
    assert (keep == truth).mean() > 0.98
    assert keep[64, 48]  # the pocket, enclosed by the garment
    assert not keep[:5].any() and not keep[:, :5].any()


def test_masked_pixels_are_filled_and_garment_kept() -> None:
    out = np.asarray(apply_mask(picture(background=(200, 190, 60)), MaskConfig(fill=(0, 0, 0))))
    assert tuple(out[2, 2]) == (0, 0, 0)
    assert tuple(out[50, 30]) == (30, 60, 160)


def test_skin_is_removed_but_skin_toned_garments_survive() -> None:
    with_face = picture(with_face=True)
    assert not garment_mask(with_face)[20, 48]                   # face gone
    assert garment_mask(with_face, MaskConfig(remove_skin=False))[20, 48]
    beige = garment_mask(picture(garment=SKIN), MaskConfig())
    assert beige[50, 30]  # the whole foreground is "skin": read as the garment's colour


def test_switch_off_and_degenerate_images() -> None:
    assert garment_mask(picture(), MaskConfig(enabled=False)).all()
    blank = Image.new("RGB", (32, 32), (255, 255, 255))
    assert garment_mask(blank).all()  # nothing left → keep the image whole
    with pytest.raises(ValueError, match="H×W×3"):
        garment_mask(np.zeros((4, 4)))
    with pytest.raises(TypeError):
        garment_mask("not an image")  # type: ignore[arg-type]


def test_before_after_png(tmp_path: Path) -> None:
    path = save_before_after(picture(with_face=True), tmp_path / "fig" / "mask.png")
    with Image.open(path) as sheet:
        assert sheet.format == "PNG" and sheet.size == (3 * 96 + 8, 96)
