import math

import numpy as np
import pytest

from fgclip_utils.data.fgovd import load_split
from fgclip_utils.evaluation.attributes import attribute_labels, parse_attributes
from fgclip_utils.evaluation.separability import separability, separability_table


@pytest.mark.parametrize("caption, expected", [
    ("A dark brown wooden table with a glossy finish.", {"color": "brown", "material": "wood"}),
    ("a transparent glass vase", {"transparency": "transparent", "material": "glass"}),
    ("A grey striped cotton shirt", {"color": "gray", "pattern": "striped", "material": "fabric"}),
    ("a black and white checkered floor", {"color": None, "pattern": "checkered"}),  # two colours: ambiguous
    ("a dog on a sofa", {"color": None, "material": None, "pattern": None, "transparency": None}),
    # caption shapes of the real FG-OVD files
    ("A striped purple fabric scarf with a body.", {"color": "purple", "pattern": "striped", "material": "fabric"}),
    ("A studded dark blue velvet scarf with a body.", {"color": "blue", "pattern": "studded", "material": "velvet"}),
    ("A grey metal spoon with a plastic handle.", {"color": "gray", "material": None}),  # two materials
    ("A car with a glass windshield and windows, with the windshield having translucent transparency, "
     "a metal roof and a plastic taillight.", {"transparency": "translucent", "material": None}),
])
def test_parse_attributes_from_fgovd_like_captions(caption, expected):
    parsed = parse_attributes(caption)
    for key, value in expected.items():
        assert parsed[key] == value, key


def test_synthetic_labels_are_the_true_values(synth_bench):
    split = load_split(synth_bench[0]["hard"])
    labels = attribute_labels(split)
    assert len(labels) == len(split)
    for ann, (_, row) in zip(split.annotations, labels.iterrows(), strict=True):
        assert row["annotation_id"] == ann.id and row["color"] == ann.attributes["color"]
        assert row["color"] in ann.positive and row["material"] in ann.positive


def _clusters(n_per, k, d=8, spread=0.05, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    x = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centres])
    return x, np.repeat([f"c{i}" for i in range(k)], n_per)


def test_separable_clusters_score_high_and_shuffled_labels_do_not():
    x, y = _clusters(30, 3)
    good = separability(x, y)
    assert good["knn_acc"] == 1.0 and good["probe_acc"] == 1.0 and good["silhouette"] > 0.5
    assert good["majority"] == pytest.approx(1 / 3, abs=0.05) and good["classes"] == 3 and good["n"] == 90
    shuffled = separability(x, np.random.default_rng(1).permutation(y))
    assert shuffled["knn_acc"] < 0.6 and shuffled["silhouette"] < 0.1


def test_missing_labels_and_rare_classes_are_left_out():
    x, y = _clusters(10, 2)
    y = y.astype(object)
    y[:3] = None
    y[-2:] = "rare"
    out = separability(x, y, min_count=4)
    assert out["n"] == 15 and out["classes"] == 2
    single = separability(x[:10], ["a"] * 10)
    assert single["classes"] == 1 and math.isnan(single["knn_acc"])


def test_separability_table_layout():
    x, y = _clusters(12, 2)
    import pandas as pd
    labels = pd.DataFrame({"color": y, "pattern": y[::-1]})
    table = separability_table({("before", "image"): x, ("after", "image"): x * 2}, labels, ["color", "pattern"])
    assert list(table[["stage", "attribute"]].itertuples(index=False, name=None)) == [
        ("before", "color"), ("before", "pattern"), ("after", "color"), ("after", "pattern")]
    assert (table["knn_acc"] == 1.0).all()


def test_attribute_confusion_recovers_a_planted_confusion():
    import torch

    from fgclip_utils.evaluation.attributes import attribute_confusion
    from fgclip_utils.extraction.embedding_cache import SplitEmbeddings

    captions = ["a blue mug", "a green mug", "a red mug"]
    text = torch.eye(3, 8)
    # 10 red mugs whose crops look blue (a planted red -> blue confusion), 10 blue mugs that look blue
    image = torch.cat([text[0].repeat(10, 1), text[0].repeat(10, 1)])
    positive = torch.tensor([2] * 10 + [0] * 10)
    negatives = torch.tensor([[0, 1]] * 10 + [[1, 2]] * 10)
    emb = SplitEmbeddings(image=image, text=text, captions=captions, positive=positive, negatives=negatives,
                          annotation_ids=torch.arange(20), meta={"split": "color"})
    table = attribute_confusion({"color": emb, "hard": emb}, {"cosine": None})  # "hard" is no attribute split
    assert table[["positive", "confused_with", "count", "labelled", "share"]].values.tolist() == [
        ["red", "blue", 10, 10, 1.0]]
    faithful = type(emb)(**{**emb.to_dict(), "image": text[positive].clone()})  # every crop looks like its caption
    assert attribute_confusion({"color": faithful}, {"cosine": None}).empty  # the positive always wins
