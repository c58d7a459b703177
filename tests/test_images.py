import io
import json

import pytest
from PIL import Image

from fgclip_utils.data.coco_images import crop, crop_box, fetch_images, image_path, is_valid_image
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
    assert "HTTP 404" in report.missing[5] and "validation" in report.missing[4]
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


@pytest.mark.parametrize("bbox, scale, expected", [
    ((10, 20, 30, 40), 1.0, (10, 20, 40, 60)),
    ((10, 20, 30, 40), 2.0, (0, 0, 55, 80)),  # centre (25, 40): 60x80 box, clipped at the top-left
    ((90, 70, 10, 10), 3.0, (80, 60, 100, 80)),  # clipped at the bottom-right
    ((50, 50, 0.2, 0.2), 1.0, (50, 50, 51, 51)),  # never empty
])
def test_crop_box(bbox, scale, expected):
    assert crop_box(bbox, scale, 100, 80) == expected


def test_crop_returns_rgb_of_the_box():
    im = Image.new("RGBA", (100, 80), (0, 0, 255, 255))
    im.paste((255, 0, 0, 255), (10, 20, 40, 60))
    out = crop(im, (10, 20, 30, 40))
    assert out.mode == "RGB" and out.size == (30, 40) and out.getpixel((15, 15)) == (255, 0, 0)
    with pytest.raises(ValueError, match="scale_factor"):
        crop(im, (10, 20, 30, 40), 0)
