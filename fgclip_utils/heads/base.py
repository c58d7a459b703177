"""What the head builders share: seeded construction and a valid attention-head count. The interface every head
implements, :class:`~fgclip_utils.evaluation.similarity.SimilarityHead`, lives with the evaluation that calls it."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    """Run the block with ``torch.manual_seed(seed)`` (when given) without touching the caller's RNG state."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def attention_head_count(dim: int, wanted: int) -> int:
    """``wanted`` attention heads, or the largest count below it that divides ``dim``."""
    return max(h for h in range(1, min(wanted, dim) + 1) if dim % h == 0)
