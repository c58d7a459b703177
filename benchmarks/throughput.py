"""How much arithmetic a CLIP forward pass is, and what the device could do at most.

:func:`forward_flops` counts a model's FLOPs per crop and per caption with ``torch.utils.flop_counter``
(matrix products, convolutions and attention; element-wise work is not counted, as usual). The device's
peak comes from the vendor's dense (no sparsity) datasheet figure for known GPUs (:data:`GPU_PEAK_TFLOPS`),
and :func:`matmul_tflops` measures what one large matrix product reaches, a practical roof on any device
(the only one on CPU, where no nominal figure is assumed).
"""
from __future__ import annotations

import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fgclip_utils.extraction.clip_forward import encode_tokens, resolve_precision
from fgclip_utils.extraction.clip_models import ClipBundle, synchronize

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


@torch.no_grad()
def matmul_tflops(device: str | torch.device, precision: str = "auto", n: int = 4096, seconds: float = 1.0) -> float:
    """TFLOP/s of repeated (n x n) @ (n x n) products in ``precision`` on ``device``: a practical roof."""
    device = torch.device(device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[resolve_precision(device, precision)]
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    synchronize(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2:
        a @ b
        count += 1
        synchronize(device)
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e12


__all__ = ["GPU_PEAK_TFLOPS", "forward_flops", "nominal_peak_tflops", "matmul_tflops"]
