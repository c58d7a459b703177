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
    path = _write(tmp_path, _mutate(mutation))
    with pytest.raises(ValueError, match=message) as err:
        load_split(path)
    assert str(path) in str(err.value)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        load_split(path)


def test_missing_negative_list_means_no_negatives(tmp_path):
    data = _valid()
    del data["annotations"][0]["neg_category_ids"]
    assert load_split(_write(tmp_path, data)).n_skipped == 2


def test_split_url_points_at_the_fgovd_repository():
    assert split_url("hard") == f"{assets.FGOVD_RAW_URL}/benchmarks/1_attributes.json"
    assert split_url("color", "train").endswith("/training_sets/color.json")
    with pytest.raises(KeyError, match="unknown split"):
        split_url("very-hard")


def test_download_split_caches_and_rejects_malformed_files(server, tmp_path):
    good = json.dumps(_valid()).encode()
    server.add("benchmarks/1_attributes.json", good)
    path = download_split("hard", cache_dir=tmp_path, base_url=server.base)
    assert load_split(path).annotations[0].positive == "a red mug"
    download_split("hard", cache_dir=tmp_path, base_url=server.base)
    assert server.hits["/benchmarks/1_attributes.json"] == 1  # cached

    # the upstream file turns bad: it is rejected and the good cached copy is intact
    server.add("benchmarks/1_attributes.json", json.dumps(_mutate(lambda d: d.pop("images"))).encode())
    path.write_bytes(b"{corrupted")  # a damaged local copy forces a re-download
    with pytest.raises(DownloadError, match="validation"):
        download_split("hard", cache_dir=tmp_path, base_url=server.base)
    assert path.read_bytes() == b"{corrupted"  # the bad download did not replace it
    server.add("benchmarks/1_attributes.json", good)
    assert load_split(download_split("hard", cache_dir=tmp_path, base_url=server.base)).annotations


def test_download_split_honours_env_base_url(server, tmp_path, monkeypatch):
    server.add("validation_sets/color.json", json.dumps(_valid()).encode())
    monkeypatch.setenv(assets.FGOVD_URL_ENV, server.base)
    assert download_split("color", "val", cache_dir=tmp_path).name == "color.json"
