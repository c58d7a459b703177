"""What an extraction will cost, said before it starts: FLOPs per crop and caption, the device's peak, and an
estimate of the minutes.

:func:`forward_flops` counts a model's FLOPs per crop and per caption with ``torch.utils.flop_counter``
(matrix products, convolutions and attention; element-wise work is not counted, as usual). A GPU's peak is the
vendor's dense datasheet figure (:data:`GPU_PEAK_TFLOPS`). :func:`extraction_estimate` turns a workload (images
to decode, crops and captions to encode) into minutes: the model at :data:`GPU_EFFICIENCY` of the peak on a
GPU (at :data:`CPU_TFLOPS` on a CPU), and decoding at :data:`DECODE_IMAGES_PER_S` per DataLoader worker, the
slower of the two bounding the time (they overlap). Both rates are assumptions from this project's CPU build
machine, not GPU measurements (none has been possible yet): the estimate says so, and is an order of magnitude.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .clip_forward import encode_tokens, resolve_precision
from .clip_models import ClipBundle, as_bundles

GPU_EFFICIENCY = 0.4  # share of the datasheet peak a batched ViT forward reaches (assumed)
CPU_TFLOPS = 0.15  # what the crop encoder reached on the 2-core build machine (0.19 TFLOP/s matmul roof, 78%)
DECODE_IMAGES_PER_S = 150.0  # COCO-sized JPEG decode + resize per worker, build machine (356 images in 2.4 s)


# Dense tensor-core (bf16/fp16) and plain fp32 peaks in TFLOP/s, vendor datasheets; the first name that
# occurs in ``torch.cuda.get_device_name()`` wins, so the specific variants come first.
GPU_PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756.0, "fp16": 756.0, "fp32": 51.2},
    "H100 NVL": {"bf16": 835.0, "fp16": 835.0, "fp32": 60.0},
    "H100": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},  # SXM5
    "H200": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
    "L4": {"bf16": 121.0, "fp16": 121.0, "fp32": 30.3},
    "T4": {"fp16": 65.0, "fp32": 8.1},
    "V100": {"fp16": 125.0, "fp32": 15.7},
}


def _count(model: torch.nn.Module, fn) -> int:
    # In eval mode nn.MultiheadAttention takes a fused fast path that the counter does not see, and a fused
    # scaled-dot-product kernel (CPU flash attention, torch >= 2.14) hides the attention products too; the same
    # arithmetic in training mode on the math backend is counted (dropout is 0 in CLIP, so nothing else changes).
    modes = {m: m.training for m in model.modules()}
    model.train()
    try:
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            fn()
    finally:
        for m, mode in modes.items():
            m.training = mode
    return int(counter.get_total_flops())


@torch.no_grad()
def forward_flops(bundle: ClipBundle, caption: str = "a small red striped wooden translucent star") -> dict:
    """FLOPs of one forward pass: ``image`` per crop, ``text_full`` per caption at the full context,
    ``text_trimmed`` for ``caption`` cut after its end-of-text token (as
    :mod:`fgclip_utils.extraction.clip_forward` runs it)."""
    pixels = torch.zeros(1, 3, *bundle.image_size, device=bundle.device)
    tokens = bundle.tokenizer([caption]).to(bundle.device)
    model = bundle.model
    return {"image": _count(model, lambda: model.encode_image(pixels)),
            "text_full": _count(model, lambda: model.encode_text(tokens)),
            "text_trimmed": _count(model, lambda: encode_tokens(model, tokens))}


def nominal_peak_tflops(device: str | torch.device, precision: str = "auto") -> tuple[float, str] | None:
    """The datasheet peak of a known GPU in ``precision`` and the GPU's name, or None (CPU, unknown GPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    resolved = resolve_precision(device, precision)
    for key, peaks in GPU_PEAK_TFLOPS.items():
        if key in name and resolved in peaks:
            return peaks[resolved], name
    return None


_FLOPS: dict[tuple[str, str], tuple[int, int]] = {}  # (model, weights) -> (per crop, per trimmed caption)


def _flops_of(bundle: ClipBundle) -> tuple[int, int]:
    key = (bundle.name, bundle.weights_id)
    if key not in _FLOPS:
        f = forward_flops(bundle)
        _FLOPS[key] = f["image"], f["text_trimmed"]
    return _FLOPS[key]


def extraction_estimate(backbones: ClipBundle | Sequence[ClipBundle], n_images: int, n_crops: int,
                        n_captions: int, workers: int, precision: str = "auto") -> tuple[float, str]:
    """(seconds, how it was estimated) for embedding ``n_crops`` crops of ``n_images`` images and ``n_captions``
    captions with each of ``backbones`` (one shared decode) on their device (see the module docstring)."""
    bundles = as_bundles(backbones)
    flops = 0
    for bundle in bundles:
        image_flops, text_flops = _flops_of(bundle)
        flops += n_crops * image_flops + n_captions * text_flops
    device = bundles[0].device
    peak = nominal_peak_tflops(device, precision)
    if peak is not None:
        rate, basis = peak[0] * GPU_EFFICIENCY, f"{GPU_EFFICIENCY:.0%} of the {peak[1]}'s {peak[0]:.0f} TFLOP/s peak"
    elif device.type == "cuda":
        rate, basis = 8.1 * GPU_EFFICIENCY, f"an unknown GPU taken as a T4 ({GPU_EFFICIENCY:.0%} of 8.1 TFLOP/s)"
    else:
        rate, basis = CPU_TFLOPS, f"{CPU_TFLOPS} TFLOP/s on this CPU"
    decode_s = n_images / (DECODE_IMAGES_PER_S * max(1, workers))
    how = (f"{flops / 1e12:.2f} TFLOP at {basis}; {n_images:,} images decoded at {DECODE_IMAGES_PER_S:.0f}/s per "
           f"worker x {max(1, workers)}; assumed rates, not measured on this device")
    return max(flops / (rate * 1e12), decode_s), how


def say_estimate(backbones, n_images: int, n_crops: int, n_captions: int, workers: int, precision: str,
                 what: str) -> float:
    """Print, before a long extraction starts, what it will do and about how long it will take; return the
    estimated seconds."""
    seconds, how = extraction_estimate(backbones, n_images, n_crops, n_captions, workers, precision)
    minutes = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    print(f"{what}: {n_crops:,} crops of {n_images:,} images and {n_captions:,} captions, about {minutes} "
          f"(estimate: {how})")
    return seconds
