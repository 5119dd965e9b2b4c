"""Text encoder (paper 000 Eq. 10–12): cleaning, masked first/last pooling, 300-d head."""

from __future__ import annotations

import pytest
import torch

from models.text import TextEncoder, clean_text, first_last_pool, masked_mean

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    torch.manual_seed(0)
    return TextEncoder()


def test_clean_text_drops_promotions_special_characters_and_stop_words() -> None:
    raw = "HOT SALE!!! The Slim-fit blue Jeans for men ★ 50% off + FREE shipping www.shop.example"
    assert clean_text(raw) == "Slim-fit blue Jeans men"
    assert clean_text("Buy 2 get 1 free: red dress") == "red dress"
    assert clean_text(None) == "" and clean_text("!!!") == ""


def test_masked_mean_ignores_padding_values() -> None:
    hidden = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    changed = hidden.clone()
    changed[0, 3:] = 1e6  # garbage where the mask is 0
    assert torch.allclose(masked_mean(hidden, mask), masked_mean(changed, mask))
    assert torch.allclose(masked_mean(hidden, mask)[0], hidden[0, :3].mean(0))


def test_first_last_pool_weights_layers_eq11() -> None:
    layers = [torch.full((1, 2, 4), float(v)) for v in (1.0, 3.0, 5.0, 7.0)]
    mask = torch.ones(1, 2)
    assert torch.allclose(first_last_pool(layers, mask, 0.5, "layer1"), torch.full((1, 4), 5.0))
    assert torch.allclose(first_last_pool(layers, mask, 0.5, "embeddings"), torch.full((1, 4), 4.0))
    assert torch.allclose(first_last_pool(layers, mask, 1.0, "layer1"), torch.full((1, 4), 3.0))


def test_padding_does_not_change_pooled_vector(encoder: TextEncoder) -> None:
    short = "red cotton t-shirt"
    long = "navy wool coat with a detachable hood, two deep pockets and a quilted lining"
    alone = encoder.encode_texts([short])
    padded = encoder.encode_texts([short, long])
    assert encoder.tokenize([short, long])["attention_mask"][0].sum() < \
        encoder.tokenize([short, long])["attention_mask"][1].sum()
    assert torch.allclose(alone[0], padded[0], atol=1e-5)


def test_tokens_are_300d_and_deterministic_with_seed(encoder: TextEncoder) -> None:
    batch = encoder.tokenize(["black leather boots", "summer floral dress"])
    with torch.no_grad():
        tokens = encoder(**batch)
    assert tokens.shape == (2, 300) and (tokens >= 0).all()  # ReLU of Eq. 12
    torch.manual_seed(0)
    other = TextEncoder()
    with torch.no_grad():
        assert torch.allclose(other(**batch), tokens, atol=1e-6)


def test_similar_texts_are_closer_than_unrelated(encoder: TextEncoder) -> None:
    vectors = torch.nn.functional.normalize(
        encoder.encode_texts(["blue denim jeans", "dark blue denim trousers",
                              "gold hoop earrings"]), dim=1)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_bad_arguments_are_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local BERT directory"):
        TextEncoder(tmp_path)
    with pytest.raises(ValueError, match="alpha"):
        TextEncoder(alpha=1.5)
