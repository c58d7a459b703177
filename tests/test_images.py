import io
import json

import pytest
from PIL import Image

from fgclip_utils.data.coco_images import (
    COCO_NAMES,
    SAME_PHOTO_SAMPLE,
    crop,
    crop_box,
    fetch_images,
    fetch_records,
    image_path,
    is_valid_image,
    same_photo,
    same_photo_verdict,
    to_rgb,
)
from fgclip_utils.data.fgovd import load_split


def _jpeg(w=64, h=48, color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), color).save(buf, format="JPEG")
    return buf.getvalue()


def _split(tmp_path, server, names):
    images = [{"id": i, "file_name": f"val2017/{n}", "width": 64, "height": 48, "coco_url": server.url(n)}
              for i, n in enumerate(names, start=1)]
    data = {"images": images, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": i, "image_id": i, "bbox": [1, 1, 10, 10], "category_id": 1,
                             "neg_category_ids": [2]} for i in range(1, len(names) + 1)]}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(data))
    return load_split(path, "hard")


def test_fetch_images_downloads_once_and_reports_missing(server, tmp_path):
    good = _jpeg()
    server.add("a.jpg", good)
    server.add("b.jpg", good, fail_first=1)  # recovers on retry
    server.add("trunc.jpg", good, truncate_to=len(good) // 2)  # connection drops mid-body
    server.add("corrupt.jpg", good[: len(good) // 2])  # complete response of a broken JPEG
    split = _split(tmp_path, server, ["a.jpg", "b.jpg", "trunc.jpg", "corrupt.jpg", "gone.jpg"])
    root = tmp_path / "coco"
    report = fetch_images(split, root, workers=3, backoff=0, retries=1)
    assert sorted(report.available) == [1, 2]
    assert sorted(report.missing) == [3, 4, 5]
    assert "HTTP 404" in report.missing[5] and "the downloaded file does not decode" in report.missing[4]
    assert is_valid_image(root / "val2017/a.jpg")
    assert not (root / "val2017/trunc.jpg").exists() and not (root / "val2017/corrupt.jpg").exists()
    assert not [p for p in (root / "val2017").iterdir() if p.name.endswith(".part")]

    hits = dict(server.hits)
    again = fetch_images(split, root, workers=3, backoff=0, retries=0)
    assert sorted(again.available) == [1, 2]
    assert server.hits["/a.jpg"] == hits["/a.jpg"]  # valid cached files are never fetched again


def test_a_cached_file_that_does_not_decode_is_fetched_again(server, tmp_path):
    server.add("a.jpg", _jpeg())
    split = _split(tmp_path, server, ["a.jpg"])
    dest = tmp_path / "coco" / "val2017" / "a.jpg"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(_jpeg()[:100])  # e.g. left by an older, non-atomic tool
    assert not is_valid_image(dest)
    assert fetch_images(split, tmp_path / "coco").available == {1: dest}
    assert is_valid_image(dest)


def test_image_path_rejects_escaping_file_names(tmp_path):
    with pytest.raises(ValueError, match="file_name"):
        image_path(tmp_path, {"id": 1, "file_name": "../../etc/passwd"})


@pytest.mark.parametrize("bbox, scale, size, expected", [
    ((10, 20, 30, 40), 1.0, (100, 80), (10, 20, 40, 60)),
    ((10, 20, 30, 40), 2.0, (100, 80), (0, 0, 55, 80)),  # centre (25, 40): 60x80 box, clipped at the top-left
    ((90, 70, 10, 10), 3.0, (100, 80), (80, 60, 100, 80)),  # clipped at the bottom-right
    ((50, 50, 0.2, 0.2), 1.0, (100, 80), (50, 50, 51, 51)),  # never empty
    # the authors' rule on fractional COCO boxes: left/upper floored, right/lower ceiled (rounding would give
    # (0, 114, 62, 208) and (527, 45, 590, 127))
    ((0.0, 114.24, 62.27, 93.74), 1.0, (640, 480), (0, 114, 63, 208)),
    ((526.85, 45.34, 63.08, 82.07), 1.0, (640, 427), (526, 45, 590, 128)),
    # enlarged: the corner moves by (new - old) // 2, floor division of floats: 7.9 // 2 = 3.0, not 3.95
    ((20.0, 30.0, 7.9, 7.9), 2.0, (100, 80), (17, 27, 33, 43)),
])
def test_crop_box(bbox, scale, size, expected):
    assert crop_box(bbox, scale, *size) == expected
    with pytest.raises(ValueError, match="leaves nothing"):
        crop_box((120, 10, 5, 5), 1.0, 100, 80)


def test_crop_returns_rgb_of_the_box():
    im = Image.new("RGBA", (100, 80), (0, 0, 255, 255))
    im.paste((255, 0, 0, 255), (10, 20, 40, 60))
    out = crop(im, (10, 20, 30, 40))
    assert out.mode == "RGB" and out.size == (30, 40) and out.getpixel((15, 15)) == (255, 0, 0)
    with pytest.raises(ValueError, match="scale_factor"):
        crop(im, (10, 20, 30, 40), 0)


def test_a_file_of_another_size_than_declared_is_fetched_again_or_reported(server, tmp_path):
    server.add("a.jpg", _jpeg(64, 48))
    server.add("wrong.jpg", _jpeg(32, 24))  # upstream serves a resized image
    split = _split(tmp_path, server, ["a.jpg", "wrong.jpg"])
    dest = tmp_path / "coco" / "val2017" / "a.jpg"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(_jpeg(20, 10))  # a cached file that decodes but is not the declared image
    report = fetch_images(split, tmp_path / "coco", backoff=0, retries=0)
    assert report.available == {1: dest} and Image.open(dest).size == (64, 48)  # fetched again
    assert report.missing[2].endswith("the downloaded file is 32x24 pixels where the split declares 64x48")
    assert not (tmp_path / "coco" / "val2017" / "wrong.jpg").exists()


def test_missing_reason_says_whether_the_file_exists(tmp_path):
    data = {"images": [{"id": 1, "file_name": "val2017/x.jpg", "width": 64, "height": 48},
                       {"id": 2, "file_name": "val2017/y.jpg", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
            "annotations": [{"id": 1, "image_id": 1, "bbox": [1, 1, 5, 5], "category_id": 1, "neg_category_ids": [2]}]}
    (tmp_path / "s.json").write_text(json.dumps(data))
    split = load_split(tmp_path / "s.json")
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    (tmp_path / "coco" / "val2017" / "y.jpg").write_bytes(b"not a jpeg")
    report = fetch_images(split, tmp_path / "coco")
    assert "x.jpg not found and the record has no 'coco_url'" in report.missing[1]
    assert "y.jpg does not decode" in report.missing[2] and "not found" not in report.missing[2]


def test_stale_temporary_files_are_removed_live_ones_kept(server, tmp_path):
    import os

    from fgclip_utils.atomic_io import owner_tag

    server.add("a.jpg", _jpeg())
    folder = tmp_path / "coco" / "val2017"
    folder.mkdir(parents=True)
    host = owner_tag().rsplit("-", 1)[0]
    dead = folder / f".a.jpg.{host}-999999-x1.part"  # a process that no longer runs
    live = folder / f".b.jpg.{owner_tag()}-x2.part"  # this process, still writing
    old = folder / ".c.jpg.otherhost-5-x3.part"  # another host: only removed once a day old
    for path in (dead, live, old):
        path.write_bytes(b"half")
    os.utime(old, (0, 0))
    fetch_images(_split(tmp_path, server, ["a.jpg"]), tmp_path / "coco")
    assert not dead.exists() and live.exists() and not old.exists()


def test_rgba_and_16_bit_images_are_converted_not_mangled():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))  # one opaque blue pixel
    rgb = to_rgb(rgba)
    assert rgb.mode == "RGB" and rgb.getpixel((1, 1)) == (255, 255, 255) and rgb.getpixel((0, 0)) == (0, 0, 255)
    grey16 = Image.new("I;16", (2, 1))
    grey16.putpixel((0, 0), 65535)
    grey16.putpixel((1, 0), 32896)
    converted = to_rgb(grey16)
    assert converted.getpixel((0, 0)) == (255, 255, 255) and converted.getpixel((1, 0)) == (128, 128, 128)
    palette = Image.new("P", (2, 2), 0)
    palette.info["transparency"] = 0
    assert to_rgb(palette).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ValueError, match="floating-point"):
        to_rgb(Image.new("F", (2, 2)))
    cut = crop(rgba, (0, 0, 2, 2))
    assert cut.mode == "RGB" and cut.size == (2, 2) and cut.getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow's, at open: expected here
def test_an_image_too_large_or_of_another_size_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    from PIL import Image, ImageFile

    from fgclip_utils.data import coco_images
    from fgclip_utils.data.coco_images import check_image

    path = tmp_path / "big.png"
    Image.new("L", (1200, 1000)).save(path)
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or real_load(self))
    assert check_image(path, (640, 480)) == "is 1200x1000 pixels where the split declares 640x480" and not decoded
    monkeypatch.setattr(coco_images.Image, "MAX_IMAGE_PIXELS", 1_000_000)  # 1.2 Mpx is above it, below 2x
    assert check_image(path) == "is 1200x1000 pixels, above the 1-Mpx limit" and not decoded


def test_images_that_would_not_fit_stop_the_fetch_before_any_download(server, tmp_path, monkeypatch, capsys):
    from collections import namedtuple

    from fgclip_utils.cache import InsufficientSpace
    from fgclip_utils.data import coco_images

    server.add("a.jpg", _jpeg())
    split = _split(tmp_path, server, ["a.jpg"])
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(coco_images.shutil, "disk_usage", lambda p: usage(10 ** 12, 10 ** 12, 10 ** 9))
    with pytest.raises(InsufficientSpace, match=r"1 images need about 0.0 GB \(and 2 GB to spare\) .* 1.0 GB free: "
                                                r".*warmup_start='released'"):
        fetch_images(split, tmp_path / "coco", workers=1, backoff=0, retries=0)
    assert not server.hits and not (tmp_path / "coco" / "val2017" / "a.jpg").exists()
    monkeypatch.setattr(coco_images.shutil, "disk_usage", lambda p: usage(10 ** 12, 0, 10 ** 11))
    assert sorted(fetch_images(split, tmp_path / "coco", workers=1, backoff=0, retries=0).available) == [1]
    assert "fetching 1 images (about 0.0 GB)" in capsys.readouterr().out


def _coco_records(server, folder: str, ids, name: str, payload) -> dict[int, dict]:
    """COCO image records of ``ids`` under ``folder`` named by ``name`` (a COCO_NAMES pattern), served by ``server``
    with ``payload(image_id)`` as their bytes."""
    records = {}
    for image_id in ids:
        file_name = f"{folder}/{name.format(image_id)}"
        server.add(file_name, payload(image_id))
        records[image_id] = {"file_name": file_name, "coco_url": server.url(file_name), "width": 64, "height": 48}
    return records


def test_a_photo_on_disk_under_its_other_coco_year_is_linked_once_a_sample_is_byte_identical(server, tmp_path,
                                                                                              capsys):
    photo = {i: _jpeg(color=(i * 20, 30, 30)) for i in range(1, 9)}
    root = tmp_path / "coco"
    train2017 = _coco_records(server, "train2017", range(1, 9), COCO_NAMES["train2017"], photo.get)
    assert sorted(fetch_records(train2017, root, workers=2, backoff=0).available) == list(range(1, 9))
    assert same_photo_verdict(root) is None  # nothing compared yet
    assert same_photo(root, "train2014/COCO_train2014_000000000003.jpg") == root / "train2017/000000000003.jpg"
    assert same_photo(root, "train2017/000000000003.jpg") is None  # its own year does not count

    ids = [1, 2, 3, 4, 5, 6, 9]  # 9 exists under no 2017 name
    karpathy = _coco_records(server, "train2014", ids, COCO_NAMES["train2014"], lambda i: photo.get(i, _jpeg()))
    capsys.readouterr()
    report = fetch_records(karpathy, root, workers=2, backoff=0)
    assert sorted(report.available) == ids and not report.missing
    fetched = [i for i in ids if server.hits.get(f"/{karpathy[i]['file_name']}")]
    assert fetched == [1, 2, 3, 9]  # the sample of SAME_PHOTO_SAMPLE compared, and the photo with no twin
    assert SAME_PHOTO_SAMPLE == 3 and same_photo_verdict(root) is True
    assert "3 images are already in" in capsys.readouterr().out
    for i in (4, 5, 6):  # linked: the same bytes (one inode where the file system has hard links), never fetched
        linked, twin = root / karpathy[i]["file_name"], root / train2017[i]["file_name"]
        assert linked.read_bytes() == twin.read_bytes() and linked.stat().st_ino == twin.stat().st_ino
    assert not [p for p in (root / "train2014").iterdir() if p.name.endswith(".part")]


def test_coco_years_whose_files_differ_are_each_fetched_and_the_verdict_is_kept(server, tmp_path, capsys):
    root = tmp_path / "coco"
    val2017 = _coco_records(server, "val2017", range(1, 7), COCO_NAMES["val2017"], lambda i: _jpeg(color=(9, i, 9)))
    fetch_records(val2017, root, workers=2, backoff=0)
    # the 2014 files are other encodings of the same pictures: not the same bytes
    val2014 = _coco_records(server, "val2014", range(1, 7), COCO_NAMES["val2014"],
                            lambda i: _jpeg(color=(9, i, 10)))
    report = fetch_records(val2014, root, workers=2, backoff=0)
    assert sorted(report.available) == list(range(1, 7))
    assert all(server.hits[f"/{rec['file_name']}"] == 1 for rec in val2014.values())  # every one fetched
    assert same_photo_verdict(root) is False and "differ" in capsys.readouterr().out
    for i, rec in val2014.items():
        assert (root / rec["file_name"]).read_bytes() == _jpeg(color=(9, i, 10))
    more = _coco_records(server, "val2014", [7], COCO_NAMES["val2014"], lambda i: _jpeg())
    server.add("val2017/000000000007.jpg", _jpeg(color=(1, 2, 3)))
    fetch_records({7: {**val2017[1], "file_name": "val2017/000000000007.jpg",
                       "coco_url": server.url("val2017/000000000007.jpg")}}, root, backoff=0)
    assert fetch_records(more, root, backoff=0).available == {7: root / "val2014/COCO_val2014_000000000007.jpg"}
    assert server.hits["/val2014/COCO_val2014_000000000007.jpg"] == 1  # the kept verdict: fetched, not linked
