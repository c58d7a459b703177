"""How much arithmetic a CLIP forward pass is, and what the device could do at most.

:func:`~fgclip_utils.extraction.cost_estimate.forward_flops` and the datasheet peaks live in the package (the
extraction's time estimate uses them); :func:`matmul_tflops` measures what one large matrix product reaches, a
practical roof on any device (the only one on CPU, where no nominal figure is assumed).
"""
from __future__ import annotations

import time

import torch

from fgclip_utils.extraction.clip_forward import resolve_precision
from fgclip_utils.extraction.clip_models import synchronize
from fgclip_utils.extraction.cost_estimate import GPU_PEAK_TFLOPS, forward_flops, nominal_peak_tflops


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
