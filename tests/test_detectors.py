"""The detectors' side of the paper's first question: FG-OVD's rank protocol on hand-made cases (each against an
independent count written out here), and the whole detector path (tiny random-init OWL-ViT and OWLv2 built
offline) on the synthetic benchmark, cached like the CLIP embeddings."""
import warnings

import pytest
import torch

import fgclip_utils as fg
from fgclip_utils.evaluation.detector_ranking import detector_split_row
from fgclip_utils.extraction import detectors

GT = (10.0, 10.0, 20.0, 20.0)  # x, y, w, h: the box (10, 10)-(30, 30), area 400


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _independent_rank(gt_xywh, boxes, scores, total, iou=0.5):
    """The protocol in plain Python: greedy NMS over the predictions, then the most confident survivor that
    overlaps the ground truth by more than ``iou``; rank = how many of its scores are >= the positive's."""
    gt = (gt_xywh[0], gt_xywh[1], gt_xywh[0] + gt_xywh[2], gt_xywh[1] + gt_xywh[3])
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])
    kept = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= iou for k in kept):
            kept.append(i)
    hits = [i for i in kept if _iou(boxes[i], gt) > iou]
    if not hits:
        return len(total[0]) if total else 0
    row = total[hits[0]]
    return sum(s >= row[0] for s in row)


CASES = {
    # name: (boxes, scores, total_scores, expected rank)
    "overlap above 0.5, positive best": ([(10, 10, 30, 30)], [0.9], [[0.9, 0.2, 0.1]], 1),
    "overlap above 0.5, one negative higher": ([(11, 11, 31, 31)], [0.8], [[0.5, 0.8, 0.1]], 2),
    "overlap below 0.5 (IoU 1/3): no match, worst": ([(20, 10, 40, 30)], [0.9], [[0.9, 0.1, 0.1]], 3),
    "no overlap at all: worst": ([(100, 100, 120, 120)], [0.9], [[0.9, 0.1, 0.1]], 3),
    "ties count against the positive": ([(10, 10, 30, 30)], [0.5], [[0.5, 0.5, 0.5]], 3),
    "two overlapping predictions: the more confident one is the match":
        ([(10, 10, 30, 30), (12, 12, 30, 30)], [0.6, 0.95], [[0.6, 0.1, 0.1], [0.2, 0.95, 0.3]], 3),
    "two predictions, only the less confident overlaps the box":
        ([(10, 10, 30, 30), (200, 200, 260, 260)], [0.3, 0.99], [[0.3, 0.1, 0.2], [0.1, 0.99, 0.5]], 1),
}


@pytest.mark.parametrize("name", list(CASES))
def test_detector_rank_matches_the_protocol_on_hand_cases(name):
    boxes, scores, total, expected = CASES[name]
    assert _independent_rank(GT, boxes, scores, total) == expected
    assert fg.detector_rank(GT, boxes, scores, total) == expected


def test_nms_runs_before_matching():
    # A (0.95) overlaps the box by IoU 1/3 only; B (0.9) overlaps it by 2/3 but A suppresses B (IoU 0.54): after
    # NMS nothing matches, so the rank is the worst, though B alone would rank the positive first
    boxes, scores, total = [(20, 10, 40, 30), (14, 10, 34, 30)], [0.95, 0.9], [[0.1, 0.95, 0.2], [0.9, 0.1, 0.1]]
    assert _iou(boxes[0], boxes[1]) > 0.5 and _iou(boxes[1], (10, 10, 30, 30)) > 0.5
    assert _independent_rank(GT, boxes, scores, total) == 3 == fg.detector_rank(GT, boxes, scores, total)
    assert fg.detector_rank(GT, boxes[1:], scores[1:], total[1:]) == 1


def test_random_cases_agree_with_the_independent_count():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        p = int(torch.randint(1, 6, (1,), generator=g))
        xy = torch.rand(p, 2, generator=g) * 30
        wh = 5 + torch.rand(p, 2, generator=g) * 25
        boxes = torch.cat([xy, xy + wh], dim=1).tolist()
        total = torch.rand(p, 4, generator=g)
        total[:, 0] = torch.where(torch.rand(p, generator=g) < 0.3, total[:, 1], total[:, 0])  # some ties
        scores = total.max(dim=1).values.tolist()
        assert fg.detector_rank(GT, boxes, scores, total.tolist()) == \
            _independent_rank(GT, boxes, scores, total.tolist())


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="same predictions"):
        fg.detector_rank(GT, [(0, 0, 1, 1)], [0.5, 0.4], [[0.5, 0.1]])
    with pytest.raises(ValueError, match="shape \\(0, V\\)"):
        fg.detector_rank(GT, [], [], [])
    assert fg.detector_rank(GT, torch.zeros(0, 4), [], torch.zeros(0, 11)) == 11  # no predictions: the worst


def test_registry_has_the_checkpoints_the_fgovd_authors_ran():
    assert {k: fg.DETECTORS[k] for k in ("owlvit-b16", "owlvit-l14", "owlv2-b16", "owlv2-l14")} == {
        "owlvit-b16": "google/owlvit-base-patch16", "owlvit-l14": "google/owlvit-large-patch14",
        "owlv2-b16": "google/owlv2-base-patch16", "owlv2-l14": "google/owlv2-large-patch14"}
    with pytest.raises(KeyError, match="unknown detector 'owl-b16'.*owlv2-b16"):
        detectors.spec_of("owl-b16")


def test_missing_transformers_is_named(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match=r"fgclip-utils\[detectors\]"):
        detectors.load_detector("owlvit-tiny")


@pytest.mark.parametrize("name", ["owlvit-tiny", "owlv2-tiny"])
def test_tiny_detector_runs_the_whole_path_and_is_cached(cache_dir, name, capsys):
    P = fg.get_profile("smoke")
    bench = fg.load_benchmark(P, "test", ["hard", "transparency"])
    det = detectors.load_detector(name, device="cpu")
    for split, n in (("hard", P.paper_n["hard"]), ("transparency", P.paper_n["transparency"])):
        preds = detectors.detect_split(det, bench.splits[split], bench.image_root, n, bench.available[split],
                                       progress=False)
        assert preds.meta["from_cache"] is False and len(preds.annotation_ids) == len(bench.splits[split])
        assert all(t.shape[1] == n + 1 and len(t) == len(b) == len(s) for t, b, s in
                   zip(preds.total_scores, preds.boxes, preds.scores, strict=True))
        assert all(len(b) == 36 for b in preds.boxes)  # 6 x 6 patches, all under the 100-box cap
        row = detector_split_row(preds, name)
        assert row["n_kept"] == len(preds.annotation_ids) and 1 <= row["mean_rank_at_n"] <= n + 1
        # some boxes are matched by a prediction (ranked by its scores), the others ranked last by rule
        assert 0 < row["no_overlap"] < row["n_kept"] and row["mean_rank_at_n"] < n + 1
        # before the long part, a time measured on the second inference (the first warms up)
        said = capsys.readouterr().out
        assert f"{name} on {split}: {len(preds.annotation_ids):,} inferences, about " in said
        assert "ms each, measured here); predictions are cached per detector and split" in said
        # the cached predictions are the same, read back verified
        again = detectors.detect_split(det, bench.splits[split], bench.image_root, n, bench.available[split],
                                       progress=False)
        assert again.meta["from_cache"] is True and detector_split_row(again, name) == row
        assert "inferences, about" not in capsys.readouterr().out  # nothing to run, nothing to estimate
        assert all(torch.equal(a, b) for a, b in zip(again.total_scores, preds.total_scores, strict=True))


def test_a_corrupt_prediction_entry_is_recomputed_and_an_unreadable_image_named(cache_dir):
    P = fg.get_profile("smoke")
    bench = fg.load_benchmark(P, "test", ["hard"])
    det = detectors.load_detector("owlvit-tiny", device="cpu")
    split = bench.splits["hard"]
    first = detectors.detect_split(det, split, bench.image_root, 10, progress=False)
    (entry,) = (cache_dir / "detectors").glob("owlvit-tiny_hard_*.pt")
    entry.write_bytes(entry.read_bytes()[:-100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = detectors.detect_split(det, split, bench.image_root, 10, progress=False)
    assert again.meta["from_cache"] is False and any("recomputing" in str(w.message) for w in caught)
    assert detector_split_row(again, "x") == detector_split_row(first, "x")
    victim = fg.data.coco_images.image_path(bench.image_root, next(iter(split.images.values())))
    victim.write_bytes(b"not an image")
    with pytest.raises(OSError, match=f"{victim.name}.*owlvit-tiny"):
        detectors.detect_split(det, split, bench.image_root, 9, progress=False)


def test_cli_detect_writes_one_record_per_detector_and_split(cache_dir, tmp_path, capsys):
    from fgclip_utils import results
    from fgclip_utils.cli import main

    out = tmp_path / "records"
    assert main(["detect", "--profile", "smoke", "--detector", "owlvit-tiny", "--splits", "hard", "pattern",
                 "--output", str(out), "--no-progress"]) == 0
    records = sorted(out.glob("*.json"))
    assert [p.name for p in records] == ["synthetic_hard_tiny-owlvit_owlvit-tiny_en_detector_ranking.json",
                                         "synthetic_pattern_tiny-owlvit_owlvit-tiny_en_detector_ranking.json"]
    record = results.read_record(records[0])
    assert record["task"] == "detector_ranking" and record["metrics"]["paper_n"] == 10
    assert 1 <= record["metrics"]["mean_rank_at_n"] <= 11 and (out / "results.csv").exists()
    assert "random-init tiny detectors" in capsys.readouterr().out
    assert main(["detect", "--detector", "owl-b16", "--output", str(out)]) == 2
    assert "close matches" in capsys.readouterr().err


def test_a_tiny_detector_of_another_build_is_made_again(tmp_path):
    from fgclip_utils.extraction.detectors import TINY_DETECTOR_BUILD, make_tiny_detector

    out = make_tiny_detector("owlvit", tmp_path / "owlvit-tiny")
    weights = next(out.glob("model.*"))
    assert f"build {TINY_DETECTOR_BUILD}" in (out / "done").read_text()
    before = weights.stat().st_mtime_ns
    assert make_tiny_detector("owlvit", out) == out and weights.stat().st_mtime_ns == before  # reused
    (out / "done").write_text("complete\n")  # what an earlier build left
    make_tiny_detector("owlvit", out)
    assert weights.stat().st_mtime_ns != before and f"build {TINY_DETECTOR_BUILD}" in (out / "done").read_text()
