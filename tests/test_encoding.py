import copy

import pytest
import torch
from throughput import forward_flops, matmul_tflops, nominal_peak_tflops  # benchmarks/throughput.py

from fgclip_utils.extraction.clip_forward import autocast, encode_texts, encode_tokens, resolve_precision
from fgclip_utils.extraction.clip_models import load_clip

CAPTIONS = ["a star", "a small red striped wooden translucent star on a checkered plastic table",
            "a large blue dotted metal opaque hexagon", "a star"]


@pytest.fixture(scope="module")
def vit_b16():
    return load_clip("ViT-B-16", device="cpu", seed=0)  # random init: the real architecture, offline


@pytest.mark.parametrize("name", ["tiny", "vit"])
def test_trimmed_text_encoding_equals_open_clip(name, tiny_clip, request):
    bundle = tiny_clip if name == "tiny" else request.getfixturevalue("vit_b16")
    tokens = bundle.tokenizer(CAPTIONS)
    with torch.no_grad():
        full = bundle.model.encode_text(tokens)
        trimmed = encode_tokens(bundle.model, tokens)
    assert torch.allclose(trimmed, full, atol=1e-5, rtol=1e-4), (trimmed - full).abs().max()


def test_untrimmable_text_tower_is_run_as_it_is(tiny_clip):
    model = copy.deepcopy(tiny_clip.model)
    model.text_pool_type = "last"  # pooling at the last position: the padding matters, so no trimming
    tokens = tiny_clip.tokenizer(CAPTIONS)
    with torch.no_grad():
        assert torch.equal(encode_tokens(model, tokens), model.encode_text(tokens))


def test_encode_texts_keeps_order_and_encodes_duplicates_once(tiny_clip):
    emb = encode_texts(tiny_clip, CAPTIONS, batch_size=2, progress=False)
    assert emb.shape == (4, 64) and torch.equal(emb[0], emb[3])
    with torch.no_grad():
        ref = torch.nn.functional.normalize(tiny_clip.model.encode_text(tiny_clip.tokenizer(CAPTIONS)), dim=-1)
    assert torch.allclose(emb, ref, atol=1e-5)
    assert encode_texts(tiny_clip, [], progress=False).shape == (0, 64)


def test_precision_choices():
    assert resolve_precision("cpu") == "fp32" and resolve_precision("cpu", "bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("cpu", "int8")
    with pytest.raises(ValueError, match="fp16 autocast is for GPUs"):
        resolve_precision("cpu", "fp16")
    with autocast("cpu", "bf16"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with autocast("cpu", "auto"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


def test_bf16_text_embeddings_stay_close_to_fp32(tiny_clip):
    fp32 = encode_texts(tiny_clip, CAPTIONS, progress=False)
    bf16 = encode_texts(tiny_clip, CAPTIONS, progress=False, precision="bf16")
    assert bf16.dtype == torch.float32 and (fp32 * bf16).sum(-1).min() > 0.99


def test_forward_flops_match_the_published_vit_b16_count(vit_b16):
    flops = forward_flops(vit_b16)
    # ViT-B/16 at 224 px: 17.6 GMACs = 35.1 GFLOPs (attention included, which eval mode's fused path hides)
    assert flops["image"] == pytest.approx(35.1e9, rel=0.02)
    # text: 12 layers of width 512 over 77 tokens, about 2 * 38M params * 77; trimmed is proportionally less
    assert flops["text_full"] == pytest.approx(5.9e9, rel=0.05)
    assert 0.05 < flops["text_trimmed"] / flops["text_full"] < 0.3
    assert not vit_b16.model.training  # counting left the model in eval mode


def test_device_roof_and_peak():
    assert matmul_tflops("cpu", "fp32", n=256, seconds=0.05) > 0
    assert nominal_peak_tflops("cpu") is None


def test_autocast_casts_frozen_weights_once_with_the_same_numbers(tiny_clip):
    model, x = tiny_clip.model, torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain = model.encode_image(x)
        with autocast("cpu", "bf16", model):
            assert all(p.requires_grad for p in model.parameters())  # what lets autocast cache the casts
            cached = model.encode_image(x)
    assert torch.equal(plain, cached)
    assert not any(p.requires_grad for p in model.parameters())  # frozen again
    with autocast("cpu", "bf16", model):  # gradients on: nothing is touched
        assert not any(p.requires_grad for p in model.parameters())


def test_the_extraction_estimate_scales_with_the_work_and_says_how_it_was_made(tiny_clip, capsys):
    from fgclip_utils.extraction.cost_estimate import CPU_TFLOPS, DECODE_IMAGES_PER_S, extraction_estimate, say_estimate

    flops = forward_flops(tiny_clip)
    seconds, how = extraction_estimate(tiny_clip, 0, 1000, 500, workers=1)
    expected = (1000 * flops["image"] + 500 * flops["text_trimmed"]) / (CPU_TFLOPS * 1e12)
    assert seconds == pytest.approx(expected) and "TFLOP/s on this CPU" in how and "assumed" in how
    assert extraction_estimate([tiny_clip, tiny_clip], 0, 1000, 500, 1)[0] == pytest.approx(2 * expected)
    decode_bound, _ = extraction_estimate(tiny_clip, 30_000, 1, 1, workers=2)
    assert decode_bound == pytest.approx(30_000 / (2 * DECODE_IMAGES_PER_S))  # decoding bounds it
    say_estimate(tiny_clip, 30_000, 1, 1, 2, "auto", "embedding hard")
    assert "embedding hard: 1 crops of 30,000 images and 1 captions, about 2 min" in capsys.readouterr().out
