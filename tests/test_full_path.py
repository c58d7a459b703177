"""The `full` profile's data path end to end, against a real HTTP server on 127.0.0.1 standing in for the upstream
hosts: FG-OVD split files (verified by hash) and COCO images by their coco_url are downloaded, one image is gone
upstream, and the evaluation accounts for it."""
import json

from fgclip_utils.data.benchmark_data import fgovd_benchmark
from fgclip_utils.data.fgovd import SPLITS
from fgclip_utils.evaluation.fine_grained import evaluate_splits
from fgclip_utils.extraction.embedding_cache import embed_splits


def _serve_as_fgovd(upstream, synth_bench, splits, gone_image_id):
    paths, root = synth_bench
    for name in splits:
        data = json.loads(paths[name].read_text())
        for img in data["images"]:
            coco_name = f"val2017/{img['id']:012d}.png"
            img["file_name"] = coco_name
            img["coco_url"] = f"http://images.cocodataset.org/{coco_name}"
            if img["id"] != gone_image_id:
                upstream.serve(img["coco_url"], (root / f"synth/{img['id']:012d}.png").read_bytes())
        upstream.serve_asset(f"fgovd/benchmarks/{SPLITS[name].file_name}", json.dumps(data).encode())


def test_full_data_path_downloads_evaluates_and_reports_missing(upstream, synth_bench, cache_dir, tmp_path,
                                                                 tiny_clip):
    _serve_as_fgovd(upstream, synth_bench, ["hard", "color"], gone_image_id=2)
    bench = fgovd_benchmark("test", ["hard", "color"], image_root=tmp_path / "coco", workers=4)
    assert list(bench.splits) == ["hard", "color"]  # only the splits asked for
    n_images = len(bench.splits["hard"].images)
    assert bench.available["hard"] == set(range(1, n_images + 1)) - {2}
    assert list(bench.missing["hard"]) == [2] and "HTTP 404" in bench.missing["hard"][2]

    table = evaluate_splits(embed_splits(tiny_clip, bench, progress=False))
    lost = sum(a.image_id == 2 for a in bench.splits["hard"].annotations)
    assert lost > 0 and (table["missing_images"] == lost).all()
    assert (table["n"] + table["skipped"] + table["missing_images"] == 24).all()

    # a second run downloads nothing that is already valid
    hits = sum(upstream.server.hits.values())
    fgovd_benchmark("test", ["hard", "color"], image_root=tmp_path / "coco", workers=4)
    assert sum(upstream.server.hits.values()) - hits == 1  # only the image that is still missing is asked for again
