"""A backbone's eval transform, split where it can be shared: the geometry (resize, centre crop, RGB) and the
normalisation.

open_clip's eval transforms are ``Compose([<geometry on a PIL image>..., ToTensor(), Normalize(mean, std)])``.
:func:`split_transform` cuts such a transform into a :class:`PixelTransform`: ``geometry`` maps a PIL crop to
its uint8 pixels (3, H, W), done once per crop in the crop pipeline's workers, and :meth:`PixelTransform.normalize`
turns a uint8 batch into the model's input with the very operations ``ToTensor`` and ``Normalize`` apply (divide
by 255, subtract the mean, divide by the standard deviation, all in float32), so the pixels the model sees are
bit for bit those of the whole transform (tested). Two gains follow:

- backbones whose geometry is the same (:attr:`PixelTransform.key`: e.g. every ViT at 224 px with bicubic
  resize and centre crop, whatever its mean and std) share one decode and one resize of every crop;
- workers hand over uint8 pixels, a quarter of float32's bytes, and the normalisation runs batched on the
  model's device.

A transform of another shape (or a step whose ``repr`` does not state its settings, so that equality cannot be
told) is kept whole: :attr:`PixelTransform.geometry` is then the full transform, producing float pixels, and the
key is unique to that backbone.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torchvision import transforms as T
from torchvision.transforms.functional import pil_to_tensor

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # a default object repr: settings not stated


@dataclass(frozen=True)
class PixelTransform:
    """``geometry`` (PIL image -> tensor (3, H, W)) then :meth:`normalize` on a batch: the model's input."""

    geometry: Callable
    mean: tuple[float, ...] | None  # None: ``geometry`` is the whole transform (already normalised floats)
    std: tuple[float, ...] | None
    key: str  # equal keys: the same uint8 pixels for every crop

    @property
    def shareable(self) -> bool:
        return self.mean is not None

    def normalize(self, pixels: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
        """The model's float32 input from a batch of ``geometry``'s output, on ``device``."""
        pixels = pixels.to(device, non_blocking=True) if device is not None else pixels
        if not self.shareable:
            return pixels
        x = pixels.to(torch.float32).div(255)  # ToTensor
        mean = torch.as_tensor(self.mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return x.sub_(mean).div_(std)  # Normalize


class _Geometry:
    """The geometric steps of a transform, then the uint8 tensor of the resulting RGB image."""

    def __init__(self, steps: list):
        self.steps = T.Compose(steps)

    def __call__(self, image) -> torch.Tensor:
        return pil_to_tensor(self.steps(image))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.steps!r})"


def _floats(values) -> tuple[float, ...]:
    return tuple(float(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values))


def split_transform(preprocess: Callable) -> PixelTransform:
    """``preprocess`` as a :class:`PixelTransform` (see the module's docstring for when it cannot be split)."""
    steps = list(getattr(preprocess, "transforms", []))
    if len(steps) >= 2 and isinstance(steps[-2], T.ToTensor) and isinstance(steps[-1], T.Normalize):
        geometry = steps[:-2]
        described = [repr(s) for s in geometry]
        if not any(_ADDRESS.search(r) for r in described):
            norm = steps[-1]
            return PixelTransform(_Geometry(geometry), _floats(norm.mean), _floats(norm.std),
                                  key="|".join(described) or "identity")
    return PixelTransform(preprocess, None, None, key=f"whole:{id(preprocess)}")
