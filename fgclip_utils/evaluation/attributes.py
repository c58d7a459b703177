"""Attribute values of each annotation, for colouring embeddings and measuring separability.

The synthetic benchmark stores the true values; for FG-OVD they are parsed from the positive caption with
a fixed vocabulary per attribute type (the PACO attribute words FG-OVD captions use; "light"/"dark"
modifiers are ignored, so "light pink" is pink). A caption naming no value, or two values of one type (e.g.
"black and white"), gets no label for that type, so it never counts for a single class.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..data.fgovd import ATTRIBUTE_TYPES, SPLITS, Split
from ..extraction.embedding_cache import SplitEmbeddings
from .fine_grained import candidate_scores
from .similarity import Similarity

# word (as it appears in captions) -> value; synonyms map onto one value
VOCABULARY: dict[str, dict[str, str]] = {
    "color": {w: w for w in ("black", "white", "red", "green", "blue", "yellow", "brown", "orange", "pink",
                             "purple", "beige", "silver", "gold", "golden", "tan", "cream", "navy", "maroon",
                             "turquoise", "teal")} | {"gray": "gray", "grey": "gray", "golden": "gold"},
    "material": {"wood": "wood", "wooden": "wood", "metal": "metal", "metallic": "metal", "steel": "metal",
                 "plastic": "plastic", "glass": "glass", "ceramic": "ceramic", "porcelain": "ceramic",
                 "fabric": "fabric", "cloth": "fabric", "cotton": "fabric", "leather": "leather", "paper": "paper",
                 "cardboard": "paper", "stone": "stone", "rubber": "rubber", "wicker": "rattan",
                 "rattan": "rattan", "denim": "denim", "wool": "wool", "woolen": "wool", "velvet": "velvet",
                 "crochet": "crochet", "text": "text"},  # FG-OVD (from PACO) lists "text" as a material
    "pattern": {"striped": "striped", "stripes": "striped", "plain": "plain", "solid": "plain",
                "checkered": "checkered", "plaid": "checkered", "dotted": "dotted", "polka": "dotted",
                "spotted": "dotted", "floral": "floral", "patterned": "patterned", "printed": "patterned",
                "studded": "studded", "perforated": "perforated", "woven": "woven"},
    "transparency": {"transparent": "transparent", "translucent": "translucent", "opaque": "opaque",
                     "clear": "transparent"},
}
_WORD = re.compile(r"[a-z]+")


def parse_attributes(caption: str) -> dict[str, str | None]:
    """One value per attribute type found in ``caption`` (None when absent or ambiguous)."""
    words = _WORD.findall(caption.lower())
    out = {}
    for kind, vocab in VOCABULARY.items():
        values = {vocab[w] for w in words if w in vocab}
        out[kind] = values.pop() if len(values) == 1 else None
    return out


def attribute_labels(split: Split) -> pd.DataFrame:
    """``annotation_id`` and one column per attribute type (true values if the split has them, else parsed)."""
    rows = []
    for ann in split.annotations:
        if ann.attributes:
            values = {k: ann.attributes.get(k) for k in ATTRIBUTE_TYPES}
        else:
            values = parse_attributes(ann.positive)
        rows.append({"annotation_id": ann.id, **values})
    return pd.DataFrame(rows)


def attribute_sample(split: Split, emb: SplitEmbeddings, max_points: int, seed: int = 0, min_labelled: int = 8
                     ) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """A seeded subsample of ``emb``'s rows (at most ``max_points``, sorted), their attribute labels in row
    order, and the attribute types worth measuring there (at least ``min_labelled`` labelled rows, 2 values)."""
    labels = attribute_labels(split).set_index("annotation_id").loc[emb.annotation_ids.tolist()].reset_index()
    rows = np.random.default_rng(seed).permutation(len(emb))[:max_points]
    rows.sort()
    labels = labels.iloc[rows].reset_index(drop=True)
    attributes = [a for a in ATTRIBUTE_TYPES if labels[a].notna().sum() >= min_labelled and labels[a].nunique() >= 2]
    return rows, labels, attributes


def attribute_confusion(embeddings: Mapping[str, SplitEmbeddings], methods: Mapping[str, Similarity | None]
                        ) -> pd.DataFrame:
    """What each method confuses each attribute value with, on the attribute splits of ``embeddings``: per
    (method, attribute, the positive's value, the value of the negative that beat it), how many annotations the
    best-scoring negative outranked the positive in (a tie counts against the positive), and that count as a
    ``share`` of the positive value's ``labelled`` annotations. Values are parsed from both captions
    (:func:`parse_attributes`); rows whose captions name no single value are left out."""
    columns = ["method", "split", "attribute", "positive", "confused_with", "count", "labelled", "share"]
    parts = []
    for split, emb in embeddings.items():
        info = SPLITS.get(split)
        if info is None or info.attribute is None or emb.negatives.shape[1] == 0:
            continue
        cand = emb.candidates()
        positive = [parse_attributes(emb.captions[int(i)])[info.attribute] for i in emb.positive]
        kept = [r for r in range(len(emb)) if positive[r] is not None and bool(emb.rankable[r])]
        labelled = pd.Series([positive[r] for r in kept], dtype=object).value_counts()
        for method, similarity in methods.items():
            scores = candidate_scores(emb, similarity)  # the scores alone: no ranks or intervals needed here
            best = scores[:, 1:].argmax(dim=1) + 1
            errors = [(positive[r], parse_attributes(emb.captions[int(cand[r, best[r]])])[info.attribute])
                      for r in kept if scores[r, best[r]] >= scores[r, 0]]
            table = pd.DataFrame([e for e in errors if e[1] is not None], columns=["positive", "confused_with"])
            table = table.value_counts().rename("count").reset_index()
            table["labelled"] = table["positive"].map(labelled).astype(int)
            parts.append(table.assign(method=method, split=split, attribute=info.attribute,
                                      share=table["count"] / table["labelled"]))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
