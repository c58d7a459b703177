"""What an extraction or a head's training will cost, said before it starts: FLOPs per crop and caption (per
training step), the device's peak, and an estimate of the minutes.

:func:`forward_flops` counts a model's FLOPs per crop and per caption with ``torch.utils.flop_counter``
(matrix products, convolutions and attention; element-wise work is not counted, as usual). A GPU's peak is the
vendor's dense datasheet figure (:data:`GPU_PEAK_TFLOPS`). :func:`extraction_estimate` turns a workload (images
to decode, crops and captions to encode) into minutes: the model at :data:`GPU_EFFICIENCY` of the peak on a
GPU (at :data:`CPU_TFLOPS` on a CPU), and decoding at :data:`DECODE_IMAGES_PER_S` per DataLoader worker, the
slower of the two bounding the time (they overlap). Both rates are assumptions from this project's CPU build
machine, not GPU measurements (none has been possible yet): the estimate says so, and is an order of magnitude.
:func:`training_estimate` needs no assumed rate: it times one real training step of the head on the device it
will train on (:func:`step_seconds`), and counts its FLOPs beside (:func:`step_flops`).
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from .clip_forward import encode_tokens, resolve_precision
from .clip_models import ClipBundle, as_bundles, synchronize

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


def _device_rate(device: torch.device, precision: str) -> tuple[float, str]:
    """(TFLOP/s assumed, how) for work on ``device`` in ``precision``."""
    peak = nominal_peak_tflops(device, precision)
    if peak is not None:
        return peak[0] * GPU_EFFICIENCY, f"{GPU_EFFICIENCY:.0%} of the {peak[1]}'s {peak[0]:.0f} TFLOP/s peak"
    if device.type == "cuda":
        return 8.1 * GPU_EFFICIENCY, f"an unknown GPU taken as a T4 ({GPU_EFFICIENCY:.0%} of 8.1 TFLOP/s)"
    return CPU_TFLOPS, f"{CPU_TFLOPS} TFLOP/s on this CPU"


def extraction_estimate(backbones: ClipBundle | Sequence[ClipBundle], n_images: int, n_crops: int,
                        n_captions: int, workers: int, precision: str = "auto") -> tuple[float, str]:
    """(seconds, how it was estimated) for embedding ``n_crops`` crops of ``n_images`` images and ``n_captions``
    captions with each of ``backbones`` (one shared decode) on their device (see the module docstring)."""
    bundles = as_bundles(backbones)
    flops = 0
    for bundle in bundles:
        image_flops, text_flops = _flops_of(bundle)
        flops += n_crops * image_flops + n_captions * text_flops
    rate, basis = _device_rate(bundles[0].device, precision)
    decode_s = n_images / (DECODE_IMAGES_PER_S * max(1, workers))
    how = (f"{flops / 1e12:.2f} TFLOP at {basis}; {n_images:,} images decoded at {DECODE_IMAGES_PER_S:.0f}/s per "
           f"worker x {max(1, workers)}; assumed rates, not measured on this device")
    return max(flops / (rate * 1e12), decode_s), how


@contextlib.contextmanager
def _untouched(head: torch.nn.Module, device: torch.device, generator: torch.Generator | None):
    """Whatever runs inside leaves ``head``'s gradients and mode, the random number generators and ``generator``
    as they were."""
    state = generator.get_state() if generator is not None else None
    grads, mode = [p.grad for p in head.parameters()], head.training
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            yield
    finally:
        for p, g in zip(head.parameters(), grads, strict=True):
            p.grad = g
        head.train(mode)
        if state is not None:
            generator.set_state(state)


def step_flops(head: torch.nn.Module, step_loss, batch_size: int, device: str | torch.device = "cpu",
               generator: torch.Generator | None = None) -> int:
    """FLOPs of one forward ``step_loss(idx)`` of a batch of ``batch_size`` rows, counted on a real batch (matrix
    products only), leaving every state as it was."""
    device = torch.device(device)
    idx = torch.arange(batch_size, device=device)
    with _untouched(head, device, generator), torch.no_grad():
        return _count(head, lambda: step_loss(idx))


def step_seconds(head: torch.nn.Module, step_loss, batch_size: int, device: str | torch.device = "cpu",
                 generator: torch.Generator | None = None) -> float:
    """Seconds of one training step's forward and backward on this device, timed on a real batch after one
    untimed step (the optimizer's update is not timed), leaving every state as it was."""
    device = torch.device(device)
    idx = torch.arange(batch_size, device=device)
    with _untouched(head, device, generator):
        head.train()
        for _ in range(2):  # the first is a warm-up
            start = time.perf_counter()
            step_loss(idx).backward()
            synchronize(device)
            elapsed = time.perf_counter() - start
            for p in head.parameters():
                p.grad = None
        return elapsed


def training_estimate(head: torch.nn.Module, step_loss, n_rows: int, batch_size: int, epochs: int,
                      device: str | torch.device, n_val: int = 0, generator: torch.Generator | None = None
                      ) -> tuple[float, str]:
    """(seconds, how) for ``epochs`` of training ``head`` on ``n_rows`` rows in batches of ``batch_size``, each
    epoch validated on ``n_val`` rows: one step timed on this device (:func:`step_seconds`; a validation batch
    taken as a third of it, forward only), beside its counted FLOPs (:func:`step_flops`)."""
    device = torch.device(device)
    batch = min(batch_size, n_rows)
    forward = step_flops(head, step_loss, batch, device, generator)
    step_s = step_seconds(head, step_loss, batch, device, generator)
    seconds = epochs * (-(-n_rows // batch_size) + -(-n_val // batch_size) / 3) * step_s
    return seconds, (f"one step measured here at {step_s * 1e3:.3g} ms, {3 * forward / 1e9:.3g} GFLOP in its matrix "
                     "products")


def say_training_estimate(head: torch.nn.Module, step_loss, n_rows: int, batch_size: int, epochs: int, device,
                          what: str, n_val: int = 0, generator: torch.Generator | None = None,
                          early_stopping: bool = False) -> float:
    """Print, before a head's training starts, its steps and about how long they will take (``early_stopping``:
    at most that long); return the estimated seconds."""
    seconds, how = training_estimate(head, step_loss, n_rows, batch_size, epochs, device, n_val, generator)
    print(f"{what}: {'at most ' if early_stopping else ''}{epochs} epochs of {-(-n_rows // batch_size):,} steps "
          f"({n_rows:,} rows, batch {batch_size}), about {duration_text(seconds)} (estimate: {how})")
    return seconds


def duration_text(seconds: float) -> str:
    """``"12 s"`` under a minute and a half, else ``"7 min"``."""
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def say_estimate(backbones, n_images: int, n_crops: int, n_captions: int, workers: int, precision: str,
                 what: str) -> float:
    """Print, before a long extraction starts, what it will do and about how long it will take; return the
    estimated seconds."""
    seconds, how = extraction_estimate(backbones, n_images, n_crops, n_captions, workers, precision)
    print(f"{what}: {n_crops:,} crops of {n_images:,} images and {n_captions:,} captions, about "
          f"{duration_text(seconds)} (estimate: {how})")
    return seconds
