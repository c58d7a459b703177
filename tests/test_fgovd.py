import json

import pytest

from fgclip_utils.data import assets, fgovd
from fgclip_utils.data.benchmark_data import download_split, split_url
from fgclip_utils.data.download import DownloadError
from fgclip_utils.data.fgovd import SPLITS, load_split


def _valid():
    return {
        "images": [{"id": 1, "file_name": "val2017/000000000001.jpg", "width": 100, "height": 80,
                    "coco_url": "http://x/1.jpg"}],
        "categories": [{"id": 1, "name": "a red mug"}, {"id": 2, "name": "a blue mug"},
                       {"id": 3, "name": "a green mug"}],
        "annotations": [
            {"id": 10, "image_id": 1, "bbox": [10, 10, 30, 20], "category_id": 1, "neg_category_ids": [2, 3]},
            {"id": 11, "image_id": 1, "bbox": [0, 0, 100, 80], "category_id": 2, "neg_category_ids": []},
        ],
    }


def _write(tmp_path, data, name="split.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_splits_table_matches_the_benchmark():
    assert list(SPLITS) == ["trivial", "easy", "medium", "hard", "color", "material", "pattern", "transparency"]
    assert SPLITS["hard"].file_name == "1_attributes.json" and SPLITS["hard"].changed_attributes == 1
    assert SPLITS["easy"].file_name == "3_attributes.json" and SPLITS["trivial"].file_name == "shuffle_negatives.json"
    assert {SPLITS[s].attribute for s in fgovd.ATTRIBUTE_SPLITS} == {"color", "material", "pattern", "transparency"}


def test_load_split_parses_annotations(tmp_path):
    split = load_split(_write(tmp_path, _valid()), "hard")
    first, second = split.annotations
    assert first.positive == "a red mug" and first.negatives == ["a blue mug", "a green mug"]
    assert first.bbox == (10.0, 10.0, 30.0, 20.0) and first.image_id == 1
    assert split.images[1]["coco_url"] == "http://x/1.jpg"
    assert not second.rankable and split.n_skipped == 1 and len(split) == 2  # kept, reported as skipped


def _mutate(fn):
    data = _valid()
    fn(data)
    return data


def _assert_refused(tmp_path, mutation, message):
    """The split file ``mutation`` makes is refused with ``message``, naming the file."""
    path = _write(tmp_path, _mutate(mutation))
    with pytest.raises(ValueError, match=message) as err:
        load_split(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("mutation, message", [
    (lambda d: d.pop("annotations"), "top level: missing field 'annotations'"),
    (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id=10\): missing field 'bbox'"),
    (lambda d: d["images"][0].pop("file_name"), r"images\[0\]: missing field 'file_name'"),
    (lambda d: d["annotations"][0].update(category_id=99), "'category_id' 99 is not in 'categories'"),
    (lambda d: d["annotations"][0].update(neg_category_ids=[2, 42]), "'neg_category_ids' has 42"),
    (lambda d: d["annotations"][0].update(neg_category_ids="2,3"), "'neg_category_ids' must be a list"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 0, 20]), "non-positive size"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 30, -5]), "non-positive size"),
    (lambda d: d["annotations"][0].update(bbox=[90, 10, 30, 20]), "outside image 1"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 30]), r"must be \[x, y, w, h\]"),
    (lambda d: d["annotations"][0].update(image_id=7), "'image_id' 7 is not in 'images'"),
    (lambda d: d["categories"][0].update(name=""), "non-empty caption"),
])
def test_malformed_input_names_file_and_field(tmp_path, mutation, message):
    _assert_refused(tmp_path, mutation, message)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_split(path)


def test_missing_negative_list_means_no_negatives(tmp_path):
    data = _valid()
    del data["annotations"][0]["neg_category_ids"]
    assert load_split(_write(tmp_path, data)).n_skipped == 2


def test_split_url_points_at_the_pinned_fgovd_commit(monkeypatch):
    monkeypatch.delenv("FGCLIP_MIRROR", raising=False)
    commit = "d124bc5e59f4aacd33133e8b745c8252d4b05030"
    assert split_url("hard") == f"https://raw.githubusercontent.com/lorebianchi98/FG-OVD/{commit}/benchmarks/1_attributes.json"
    assert split_url("color", "train").endswith(f"/FG-OVD/{commit}/training_sets/color.json")
    assert split_url("pattern", "val").endswith(f"/FG-OVD/{commit}/validation_sets/pattern.json")
    with pytest.raises(KeyError, match="unknown split"):
        split_url("very-hard")
    monkeypatch.setenv("FGCLIP_MIRROR", "http://127.0.0.1:9")
    assert split_url("hard") == f"http://127.0.0.1:9/raw.githubusercontent.com/lorebianchi98/FG-OVD/{commit}/benchmarks/1_attributes.json"


def test_every_split_file_is_registered_with_its_git_blob_id():
    for subset, folder in assets.FGOVD_SUBSETS.items():
        for info in SPLITS.values():
            entry = assets.fgovd_asset(info.file_name, subset)
            assert entry.key == f"fgovd/{folder}/{info.file_name}" and entry.hash.startswith("gitblob:")
            assert "/main/" not in entry.url and len(entry.hash) == len("gitblob:") + 40
    assert assets.ASSETS["fgovd/benchmarks/1_attributes.json"].hash == \
        "gitblob:fd77be3a90e729362b3d4c0347a63050352abe34"
    assert assets.ASSETS["fgovd/validation_sets/transparency.json"].hash == \
        "gitblob:ee6c6e21914ed06a3ccc5542f21c45a5c837fe61"


def test_download_split_verifies_by_hash_caches_and_rejects_malformed_files(upstream, tmp_path):
    good = json.dumps(_valid()).encode()
    key = "fgovd/benchmarks/1_attributes.json"
    upstream.serve_asset(key, good)
    path = download_split("hard", cache_dir=tmp_path)
    assert load_split(path).annotations[0].positive == "a red mug"
    assert assets.ASSETS[key].verify(path)
    download_split("hard", cache_dir=tmp_path)
    assert upstream.hits(key) == 1  # cached and verified, not fetched again

    # upstream changes the file: the hash check refuses it, naming expected and got; nothing is kept
    upstream.serve_asset(key, json.dumps(_mutate(lambda d: d["categories"].pop())).encode(), record_hash=False)
    path.write_bytes(b"{corrupted")  # a damaged local copy forces a re-download
    with pytest.raises(DownloadError, match=r"downloaded 1_attributes.json has gitblob:[0-9a-f]{40}, "
                                            r"expected gitblob:[0-9a-f]{40}; not kept"):
        download_split("hard", cache_dir=tmp_path)
    assert path.read_bytes() == b"{corrupted"  # the bad download did not replace it
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]

    # a file with the right hash that does not parse is refused too
    bad = json.dumps(_mutate(lambda d: d.pop("images"))).encode()
    upstream.serve_asset(key, bad)
    with pytest.raises(DownloadError, match="not a valid split file.*missing field 'images'"):
        download_split("hard", cache_dir=tmp_path)
    upstream.serve_asset(key, good)
    assert load_split(download_split("hard", cache_dir=tmp_path)).annotations


@pytest.mark.parametrize("mutation, message", [
    (lambda d: d["images"].append(dict(d["images"][0])), "images\\[1\\]: duplicate image id 1"),
    (lambda d: d["categories"].append({"id": 2, "name": "x"}), "categories\\[3\\]: duplicate category id 2"),
    (lambda d: d["annotations"].append(dict(d["annotations"][0])), "duplicate annotation id 10"),
    (lambda d: d["annotations"][0].update(id=[1]), "field 'id' must be an integer id, got \\[1\\]"),
    (lambda d: d["annotations"][0].update(id="10"), "field 'id' must be an integer id"),
    (lambda d: d["annotations"][0].update(image_id=1.0), "field 'image_id' must be an integer id"),
    (lambda d: d["images"][0].update(id=True), "field 'id' must be an integer id, got True"),
    (lambda d: d["images"][0].update(file_name=7), "field 'file_name' must be a string"),
    (lambda d: d["images"][0].update(file_name="val2017/"), "'val2017/' must be a relative path to a file"),
    (lambda d: d["images"][0].update(file_name="/etc/passwd"), "must be a relative path to a file"),
    (lambda d: d["images"][0].update(file_name="val2017/../../x.jpg"), "must be a relative path to a file"),
    (lambda d: d["images"][0].update(width=10 ** 400), "'width'/'height' must be positive numbers"),
    (lambda d: d["annotations"][0].update(bbox=[10, 10, 10 ** 400, 5]), r"must be \[x, y, w, h\] numbers"),
    (lambda d: d["annotations"][0].update(neg_category_ids=[[2]]), "'neg_category_ids' has \\[2\\]"),
    (lambda d: d["annotations"][0].update(id=2 ** 64), "field 'id' 18446744073709551616 is outside the ids"),
    (lambda d: d["categories"][0].update(name="a red \ud800 mug"), "field 'name' holds a character UTF-8 cannot"),
    (lambda d: d["annotations"][0].update(bbox=[100.2, 10, 0.5, 5]), "lies outside image 1"),
])
def test_ids_names_and_numbers_are_checked(tmp_path, mutation, message):
    _assert_refused(tmp_path, mutation, message)


def test_unreadable_files_are_named(tmp_path):
    latin = tmp_path / "latin.json"
    latin.write_bytes(json.dumps(_valid()).replace("a red mug", "a red mug \u00e9").encode("latin-1"))
    with pytest.raises(ValueError, match="latin.json: not UTF-8 text"):
        load_split(latin)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="deep.json: JSON nested too deeply"):
        load_split(deep)


def test_negatives_identical_to_the_positive_are_reported(tmp_path):
    data = _valid()
    data["categories"].append({"id": 4, "name": "a red mug"})  # another id, the positive's very text
    data["annotations"][0]["neg_category_ids"] = [2, 4]
    split = load_split(_write(tmp_path, data))
    assert split.identical_negatives == [10] and split.annotations[0].negatives == ["a blue mug", "a red mug"]
