"""Which similarity heads exist, and :func:`build_head` for any of them: the study's own
(:mod:`~fgclip_utils.heads.study_heads`, identity-initialised, on unit embeddings) and the paper's
(:mod:`~fgclip_utils.heads.paper_heads`, as the FG-CLIP authors built them, on raw embeddings)."""
from __future__ import annotations

from .base import SimilarityHead
from .paper_heads import PAPER_HEAD_KINDS, build_paper_head
from .study_heads import STUDY_HEAD_KINDS, build_study_head

HEAD_KINDS = STUDY_HEAD_KINDS + PAPER_HEAD_KINDS


def build_head(kind: str, dim: int, *, seed: int | None = None, **options) -> SimilarityHead:
    """A similarity head of ``kind`` (one of :data:`HEAD_KINDS`) for ``dim``-d CLIP embeddings.

    ``options`` go to the family's builder: ``hidden``, ``depth``, ``dropout``, ``heads``, ``layers`` for the
    study's heads; ``cosine`` and ``sigmoid`` for the paper's. ``seed`` makes the random part of the
    initialisation reproducible without touching the global RNG.
    """
    if kind in PAPER_HEAD_KINDS:
        return build_paper_head(kind, dim, seed=seed, **options)
    if kind in STUDY_HEAD_KINDS:
        return build_study_head(kind, dim, seed=seed, **options)
    raise ValueError(f"unknown head kind {kind!r}; expected one of {HEAD_KINDS}")


def kind_family(kind: str) -> str:
    """The study kind a paper kind corresponds to (``paper-linear`` -> ``linear``), so figures share colours."""
    return kind.removeprefix("paper-")
