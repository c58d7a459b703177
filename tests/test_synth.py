import filecmp

import pytest

from fgclip_utils.data import synthetic as synth
from fgclip_utils.data.coco_images import image_path, is_valid_image
from fgclip_utils.data.fgovd import SPLITS, load_split


def _attrs(caption: str) -> dict:
    _, size, color, pattern, material, transparency, shape = caption.split()
    return {"size": size, "color": color, "pattern": pattern, "material": material,
            "transparency": transparency, "shape": shape}


def test_all_eight_splits_in_the_fgovd_schema(synth_bench):
    paths, root = synth_bench
    assert list(paths) == list(SPLITS)
    for name, path in paths.items():
        split = load_split(path, name)  # the real parser accepts it
        assert len(split) == 24 and split.n_skipped == 0
        for rec in split.images.values():
            assert is_valid_image(image_path(root, rec))


@pytest.mark.parametrize("split, changed", [("hard", 1), ("medium", 2), ("easy", 3)])
def test_difficulty_negatives_change_exactly_n_attribute_types(synth_bench, split, changed):
    for ann in load_split(synth_bench[0][split]).annotations:
        pos = _attrs(ann.positive)
        assert ann.attributes == {k: pos[k] for k in ann.attributes}
        assert len(ann.negatives) == synth.MAX_NEGATIVES == len(set(ann.negatives))
        for neg in ann.negatives:
            diff = {k for k, v in _attrs(neg).items() if v != pos[k]}
            assert len(diff) == changed and diff <= set(synth.ATTRIBUTES)


@pytest.mark.parametrize("split", ["color", "material", "pattern", "transparency"])
def test_attribute_negatives_change_only_that_attribute(synth_bench, split):
    for ann in load_split(synth_bench[0][split]).annotations:
        pos = _attrs(ann.positive)
        assert len(ann.negatives) == len(synth.ATTRIBUTES[split]) - 1
        for neg in ann.negatives:
            assert {k for k, v in _attrs(neg).items() if v != pos[k]} == {split}


def test_trivial_negatives_describe_other_objects(synth_bench):
    for ann in load_split(synth_bench[0]["trivial"]).annotations:
        assert ann.negatives and all(_attrs(n)["shape"] != ann.attributes["shape"] for n in ann.negatives)


def test_deterministic_by_seed(tmp_path):
    a = synth.make_benchmark(tmp_path / "a", 10, seed=5)
    b = synth.make_benchmark(tmp_path / "b", 10, seed=5)
    c = synth.make_benchmark(tmp_path / "c", 10, seed=6)
    assert all(filecmp.cmp(a[s], b[s], shallow=False) for s in a)
    assert filecmp.cmp(tmp_path / "a/images/synth/000000000001.png", tmp_path / "b/images/synth/000000000001.png",
                       shallow=False)
    assert not filecmp.cmp(a["hard"], c["hard"], shallow=False)


def test_existing_benchmark_is_reused(tmp_path):
    paths = synth.make_benchmark(tmp_path, 6, seed=1)
    stamp = paths["hard"].stat().st_mtime_ns
    synth.make_benchmark(tmp_path, 6, seed=1)
    assert paths["hard"].stat().st_mtime_ns == stamp
    synth.make_benchmark(tmp_path, 7, seed=1)
    assert len(load_split(paths["hard"])) == 7


def test_attribute_values_are_visibly_different():
    """Objects that differ in one attribute render to clearly different pixels."""
    import numpy as np

    base = {"shape": "square", "size": "large", "color": "red", "pattern": "plain", "material": "plastic",
            "transparency": "opaque", "cell": 0}
    def render(**kw):
        im, _ = synth._render([{**base, **kw}], np.random.default_rng(0))
        return np.asarray(im, dtype=float)[20:100, 20:100]
    ref = render()
    for attr, values in synth.ATTRIBUTES.items():
        for value in values:
            if value != base[attr]:
                assert np.abs(render(**{attr: value}) - ref).mean() > 12, (attr, value)


def test_rejects_empty_benchmark(tmp_path):
    with pytest.raises(ValueError, match="n_objects"):
        synth.make_benchmark(tmp_path, 0)


def test_split_table_synthetic_n_is_what_the_generator_makes(synth_bench):
    """The split table's synthetic N (what the smoke profile ranks against) is every annotation's negative count."""
    for name, path in synth_bench[0].items():
        info = SPLITS[name]
        made = {len(a.negatives) for a in load_split(path, name).annotations}
        expected = synth.MAX_NEGATIVES if info.group == "difficulty" else len(synth.ATTRIBUTES[info.attribute]) - 1
        assert made == {info.synthetic_n} == {expected}, name
