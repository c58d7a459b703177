"""An offline rehearsal of the `full` profile: notebooks 01-03 run top to bottom in `full` against a local server
laid out like the upstream sources (FG-OVD's repository at its pinned commit, COCO's image and annotation hosts,
CLIP_benchmark's Karpathy files, FG-CLIP's released heads), with only the models swapped (`fgclip-tiny`, the
tiny detectors) and the data small. Every download goes through the asset registry and its hash check; a URL
template, a file layout or a parser that disagreed with the registry would fail here (the server answers 404 to
anything else).

The served files are the test's own: split files made from the synthetic benchmark, rewritten to COCO file
names and URLs, with each annotation's negatives padded to the paper's N = 10 (the synthetic attribute splits
have fewer); COCO-format caption files for the same images. Their hashes are registered through
``$FGCLIP_ASSET_HASHES``, since they are not the real files.
"""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pandas as pd
import papermill as pm
import pytest
import torch
from PIL import Image

from fgclip_utils import results
from fgclip_utils.data import synthetic
from fgclip_utils.data.assets import FGOVD_SUBSETS, KARPATHY_SPLIT_FILES, coco_image_url
from fgclip_utils.data.fgovd import DIFFICULTY_SPLITS, SPLITS
from fgclip_utils.heads.fgclip_checkpoints import FGCLIP_CHECKPOINTS, download_fgclip_checkpoint, load_fgclip_checkpoint
from fgclip_utils.plots.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
TINY = ["fgclip-tiny", None]
TINY_DETECTORS = ["owlvit-tiny", "owlv2-tiny"]  # the detectors swapped like the model: no hub is reached
N_NEGATIVES = 10
SERVED = {"test": list(SPLITS), "train": list(DIFFICULTY_SPLITS), "val": ["hard"]}  # what the notebooks use
TEMPLATES = ("a picture of {}", "an image with {}", "a photo showing {}", "{} on a textured background",
             "a scene with {}")


def _jpeg(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=92)
    return buf.getvalue()


def _as_fgovd(split_file: Path, image_root: Path, folder: str, offset: int, upstream) -> bytes:
    """The synthetic split as FG-OVD publishes one: COCO names and URLs (each image served there), image ids
    moved by ``offset``, every annotation with at least 10 negatives (the split's other captions appended)."""
    data = json.loads(split_file.read_text())
    for img in data["images"]:
        source = image_root / img["file_name"]
        img.pop("synthetic", None)
        img["id"] += offset
        img["file_name"] = f"{folder}/{img['id']:012d}.jpg"
        img["coco_url"] = f"http://images.cocodataset.org/{img['file_name']}"
        upstream.serve(img["coco_url"], _jpeg(source))
    names = {c["id"]: c["name"] for c in data["categories"]}
    for ann in data["annotations"]:
        ann["image_id"] += offset
        ann.pop("attributes", None)
        negatives = list(ann["neg_category_ids"])
        pool = [c for c in names if c != ann["category_id"] and c not in negatives
                and names[c] != names[ann["category_id"]]]
        ann["neg_category_ids"] = negatives + pool[:N_NEGATIVES - len(negatives)]
    return json.dumps(data).encode()


def _caption_records(split_file: Path, image_root: Path, folder: str, offset: int, upstream) -> tuple[list, list]:
    """COCO caption-format ``images`` and ``annotations`` for the synthetic scenes of one split: five captions per
    image naming its objects' colours and shapes; every image served where COCO keeps it."""
    data = json.loads(split_file.read_text())
    objects: dict[int, list[str]] = {}
    for ann in data["annotations"]:
        objects.setdefault(ann["image_id"], []).append(f"a {ann['attributes']['color']} {ann['attributes']['shape']}")
    images, annotations = [], []
    for img in data["images"]:
        image_id = img["id"] + offset
        name = f"COCO_{folder}_{image_id:012d}.jpg"
        url = coco_image_url(folder, name)
        upstream.serve(url, _jpeg(image_root / img["file_name"]))
        images.append({"id": image_id, "file_name": name, "coco_url": url, "width": img["width"],
                       "height": img["height"]})
        objs = objects.get(img["id"], ["nothing"])
        for k, template in enumerate(TEMPLATES):
            annotations.append({"id": image_id * 10 + k, "image_id": image_id,
                                "caption": template.format(" and ".join(objs[k % len(objs):] + objs[:k % len(objs)]))})
    return images, annotations


def _checkpoint(name: str) -> bytes:
    """A state dict of the layout and shapes of the released file ``name`` (512-d, like ViT-B/16's)."""
    gen = torch.Generator().manual_seed(len(name))
    sides = {"paper-linear": (0, 1), "paper-linear-image": (0,), "paper-linear-text": (1,), "paper-mlp": (0, 1)}
    layers = (0, 2) if FGCLIP_CHECKPOINTS[name] == "paper-mlp" else (0,)
    state = {f"linear_layers.{s}.{i}.{f}": torch.randn((512, 512) if f == "weight" else (512,), generator=gen)
             for s in sides[FGCLIP_CHECKPOINTS[name]] for i in layers for f in ("weight", "bias")}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.fixture
def upstream_like_the_real_sources(upstream, tmp_path, monkeypatch):
    monkeypatch.delenv("FGCLIP_KARPATHY_JSON", raising=False)
    served: dict[str, bytes] = {}
    benches = {}
    for subset, n, seed, folder, offset in (("test", 60, 11, "val2017", 0), ("train", 48, 12, "train2017", 0),
                                            ("val", 24, 13, "train2017", 500_000)):
        out = tmp_path / f"synth-{subset}"
        benches[subset] = (synthetic.make_benchmark(out, n_objects=n, seed=seed), synthetic.image_root(out))
        paths, image_root = benches[subset]
        for split in SERVED[subset]:
            key = f"fgovd/{FGOVD_SUBSETS[subset]}/{SPLITS[split].file_name}"
            served[key] = _as_fgovd(paths[split], image_root, folder, offset, upstream)
            upstream.serve_asset(key, served[key])

    # Karpathy test and val (CLIP_benchmark's files); train2014 + restval come from COCO's 2014 annotations
    karpathy = {}
    for split, subset, offset in (("test", "test", 600_000), ("val", "val", 700_000)):
        paths, image_root = benches[subset]
        karpathy[split] = _caption_records(paths["hard"], image_root, "val2014", offset, upstream)
        images, annotations = karpathy[split]
        upstream.serve_asset(f"retrieval_annotations/{KARPATHY_SPLIT_FILES[split]}",
                             json.dumps({"images": images, "annotations": annotations}).encode())
    train = _caption_records(benches["train"][0]["hard"], benches["train"][1], "train2014", 800_000, upstream)
    restval = _caption_records(benches["test"][0]["color"], benches["test"][1], "val2014", 900_000, upstream)
    val2014 = [karpathy["test"], karpathy["val"], restval]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("annotations/captions_train2014.json", json.dumps({"images": train[0], "annotations": train[1]}))
        val_images = [i for part in val2014 for i in part[0]]
        val_annotations = [a for part in val2014 for a in part[1]]
        zf.writestr("annotations/captions_val2014.json",
                    json.dumps({"images": val_images, "annotations": val_annotations}))
    upstream.serve_asset("coco/annotations/annotations_trainval2014.zip", archive.getvalue())

    for name in FGCLIP_CHECKPOINTS:
        upstream.serve_asset(f"fgclip/checkpoints/{name}.pt", _checkpoint(name))
    return served, len(train[0]) + len(restval[0])


def _run(notebook: str, out_dir: Path, **parameters) -> Path:
    out = out_dir / notebook
    pm.execute_notebook(str(ROOT / "notebooks" / notebook), str(out), parameters={"profile": "full", **parameters},
                        cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    return out


@pytest.mark.notebook
def test_the_full_profile_end_to_end_against_a_local_copy_of_its_sources(upstream_like_the_real_sources, upstream,
                                                                       cache_dir, tmp_path, monkeypatch):
    served, warmup_images = upstream_like_the_real_sources
    monkeypatch.setenv("FGCLIP_FIGURES", str(tmp_path / "figures"))
    _run("01_clip_fine_grained_evaluation.ipynb", tmp_path, backbones=[TINY], detectors=TINY_DETECTORS)
    # notebook 01 downloads the test splits only
    assert all(upstream.hits(k) == (1 if k.startswith("fgovd/benchmarks/") else 0) for k in served)
    _run("02_projection_heads.ipynb", tmp_path, backbone=TINY, study_kinds=["linear"], losses=["triplet"])
    _run("03_umap_attribute_separability.ipynb", tmp_path, backbone=TINY)

    # every served file was fetched once (verified by its hash each time it was used), never again
    assert {k: upstream.hits(k) for k in served} == dict.fromkeys(served, 1)
    assert upstream.hits("coco/annotations/annotations_trainval2014.zip") == 1
    for split in ("test", "val"):
        assert upstream.hits(f"retrieval_annotations/{KARPATHY_SPLIT_FILES[split]}") == 1
    assert upstream.hits("retrieval_annotations/coco_train_karpathy.json") == 0  # train comes from COCO's files

    # the records: one per split, naming the split file and its hash; the paper's table filled for every row
    (run,) = results.runs_of("full")
    assert run.name == "fgclip-tiny-random0" and run.profile == "full"
    records = [r for r in results.read_records(run.folder) if r["task"] == "fine_grained_ranking"]
    assert sorted(r["dataset"] for r in records) == sorted(f"fgovd_{s}" for s in SPLITS)
    for r in records:
        key = f"fgovd/benchmarks/{r['split_file']}"
        assert r["split_file_sha256"] == hashlib.sha256(served[key]).hexdigest()
        assert r["metrics"]["paper_n"] == {"pattern": 7, "transparency": 2}.get(r["dataset"][6:], 10)
        assert 1 <= r["metrics"]["mean_rank_at_n"] <= r["metrics"]["paper_n"] + 1
    table = results.load_table("nb02_paper_heads", run)
    ours = table[table["origin"] == "this run"]
    # vanilla, each of the five paper heads after stage 1 and stage 2 (corrected), and stage 2 as the authors' code
    # ran it for the four cosine heads (stage2_recipes="both"; attention scores the same either way)
    assert len(ours) == 1 + 5 + 5 + 4
    assert sorted(ours.loc[ours["recipe"] == "as-run", "kind"]) == ["paper-linear", "paper-linear-image",
                                                                    "paper-linear-text", "paper-mlp"]
    assert ours[["fg", "mean_rank_sum", "i2t_r1", "t2i_r1", "authors_i2t_r1", "authors_t2i_r1"]].notna().all().all()
    warmup = results.load_table(results.history_table("paper-linear", "warmup"), run)
    assert list(warmup["epoch"]) == list(range(11))  # epoch 0 evaluates only, then 10 epochs
    per_run = [stem for stem, spec in FIGURES.items() if spec.scope == "run"]  # notebook 04's are per sweep
    assert sorted(p.name for p in (tmp_path / "figures").glob("*_full_fgclip-tiny-random0.png")) == sorted(
        f"{stem}_full_fgclip-tiny-random0.png" for stem in per_run)

    # the released heads: all eight fetched through the registry, verified, and loaded into their paper heads
    for name, kind in FGCLIP_CHECKPOINTS.items():
        assert load_fgclip_checkpoint(download_fgclip_checkpoint(name)).kind == kind
    assert warmup_images > 0

    # notebook 04 sweeps two backbones in `full`: fgclip-tiny's embeddings and head come from notebooks 01-02
    # (same cache keys), the second backbone's are made here, from the files already downloaded
    _run("04_backbone_sweep.ipynb", tmp_path, backbones=[TINY, ["fgclip-tiny-w128", None]])
    (sweep,) = results.sweeps_of("full")
    heads = results.load_table("nb04_heads", sweep)
    assert list(heads["backbone"]) == ["fgclip-tiny (random-init)", "fgclip-tiny-w128 (random-init)"]
    assert heads[["vanilla_fg", "head_fg", "gain"]].notna().all().all()
    ours_vanilla = table[(table["origin"] == "this run") & (table["stage"] == "vanilla")]["fg"].iloc[0]
    assert heads["vanilla_fg"].iloc[0] == pytest.approx(ours_vanilla)  # the FG-OVD Mean Rank notebook 02 reported
    ours_linear = ours[(ours["kind"] == "paper-linear") & (ours["stage"] == "fg-ovd")]["fg"].iloc[0]
    assert heads["head_fg"].iloc[0] == pytest.approx(ours_linear)  # notebook 02's head, found by its key
    assert len(list((tmp_path / "figures").glob(f"*_full_{sweep.name}.png"))) == 3

    # the command line on the same sources: its records are notebook 01's numbers
    from fgclip_utils import cli

    out = tmp_path / "cli-records"
    assert cli.main(["evaluate", "--profile", "full", "--model", "fgclip-tiny", "--output", str(out),
                     "--no-progress"]) == cli.EXIT_OK
    merged = {r["split"]: r["mean_rank_at_n"] for r in pd.read_csv(out / "results.csv").to_dict("records")}
    assert merged == pytest.approx({r["split"]: r["metrics"]["mean_rank_at_n"] for r in records})
    assert {k: upstream.hits(k) for k in served} == dict.fromkeys(served, 1)  # still nothing downloaded twice
