"""The registry of every similarity head kind and :func:`build_head` for any of them: the study's own
(:data:`~fgclip_utils.heads.study_heads.STUDY_HEADS`, identity-initialised, on unit embeddings) and the paper's
(:data:`~fgclip_utils.heads.paper_heads.PAPER_HEADS`, as the FG-CLIP authors built them, on raw embeddings)."""
from __future__ import annotations

from ..evaluation.similarity import SimilarityHead
from .paper_heads import PAPER_HEADS, build_paper_head
from .study_heads import STUDY_HEADS, build_study_head

# kind -> the family builder that makes it; the kinds are derived, so the registry cannot be half-filled
HEAD_BUILDERS = {**{k: build_study_head for k in STUDY_HEADS}, **{k: build_paper_head for k in PAPER_HEADS}}
HEAD_KINDS = tuple(HEAD_BUILDERS)


def build_head(kind: str, dim: int, *, seed: int | None = None, **options) -> SimilarityHead:
    """A similarity head of ``kind`` (one of :data:`HEAD_KINDS`) for ``dim``-d CLIP embeddings.

    ``options`` go to the family's builder: ``hidden``, ``depth``, ``dropout``, ``heads``, ``layers`` for the
    study's heads; ``cosine`` and ``sigmoid`` for the paper's. ``seed`` makes the random part of the
    initialisation reproducible without touching the global RNG. An unknown kind is refused naming the known ones.
    """
    if kind not in HEAD_BUILDERS:
        raise ValueError(f"unknown head kind {kind!r}; expected one of {HEAD_KINDS}")
    return HEAD_BUILDERS[kind](kind, dim, seed=seed, **options)


def kind_family(kind: str) -> str:
    """The study kind a paper kind corresponds to (``paper-linear`` -> ``linear``), so figures share colours."""
    return kind.removeprefix("paper-")
