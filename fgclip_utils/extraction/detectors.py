"""The open-vocabulary detectors built on CLIP (OWL-ViT, OWLv2, and the FG-OVD authors' NoctOWL), run on FG-OVD
the way the FG-OVD authors ran them (``detectors_inferences/owl_inference.py``, ``owl2_inference.py``;
STUDY.md 7.7), with Hugging Face ``transformers`` (the ``detectors`` extra).

Per annotation the vocabulary is ``[positive] + negatives[:N]``; an annotation with fewer than N negatives is
left out, as for CLIP. One joint inference over the whole vocabulary per annotation (their scripts' default; the
OWLv2 script has no other mode): each of the model's boxes gets ``sigmoid(logits)`` over the vocabulary (its
``total_scores``), its confidence and label are the maximum, and the ``MAX_PREDICTIONS`` = 100 most confident
boxes are kept, in pixels of the original image (OWLv2 pads images to a square, so its boxes scale by the longer
side). A vocabulary longer than the text encoder's 16 tokens cannot be encoded: the authors skip that
annotation, and so do we, counting it (``long_vocabulary``).

Predictions are cached per detector and split (a verified cache entry keyed by the detector, the split file's
content, the images used and their files, N and the inference settings), so a finished split is never redone.
"""
from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic_io import atomic_write_bytes, sha256_file, sha256_json
from ..cache import cache_folder, weights_dir
from ..data.coco_images import ImageReadError, image_fingerprint, image_path, to_rgb
from ..data.fgovd import Split
from .cache_entries import read_entry, write_entry
from .cost_estimate import duration_text

DETECT_VERSION = 1
MAX_PREDICTIONS = 100  # boxes kept per inference, the most confident first (their MAX_PREDICTIONS)


@dataclass(frozen=True)
class DetectorSpec:
    name: str  # the study's name, e.g. "owlvit-b16"
    hub_id: str  # Hugging Face model id, or "tiny:<family>" for the smoke profile's random-init stand-ins
    family: str  # "owlvit" or "owlv2": which transformers classes load it
    title: str  # as figures print it
    processor_id: str | None = None  # where its processor lives, when not beside the weights (NoctOWL)


# every detector the study knows; DETECTORS (name -> hub id) is the public view
DETECTOR_SPECS: dict[str, DetectorSpec] = {s.name: s for s in (
    DetectorSpec("owlvit-b16", "google/owlvit-base-patch16", "owlvit", "OWL-ViT B/16"),
    DetectorSpec("owlvit-l14", "google/owlvit-large-patch14", "owlvit", "OWL-ViT L/14"),
    DetectorSpec("owlv2-b16", "google/owlv2-base-patch16", "owlv2", "OWLv2 B/16"),
    DetectorSpec("owlv2-l14", "google/owlv2-large-patch14", "owlv2", "OWLv2 L/14"),
    # the FG-OVD authors' fine-grained detectors (NoctOWL/README.md of their repository): their weights, the base
    # models' processors
    DetectorSpec("noctowl-b16", "lorebianchi98/NoctOWL-base-patch16", "owlvit", "NoctOWL B/16",
                 "google/owlvit-base-patch16"),
    DetectorSpec("noctowl-l14", "lorebianchi98/NoctOWL-large-patch14", "owlvit", "NoctOWL L/14",
                 "google/owlvit-large-patch14"),
    DetectorSpec("noctowlv2-b16", "lorebianchi98/NoctOWLv2-base-patch16", "owlv2", "NoctOWLv2 B/16",
                 "google/owlv2-base-patch16"),
    DetectorSpec("noctowlv2-l14", "lorebianchi98/NoctOWLv2-large-patch14", "owlv2", "NoctOWLv2 L/14",
                 "google/owlv2-large-patch14"),
    DetectorSpec("owlvit-tiny", "tiny:owlvit", "owlvit", "OWL-ViT tiny (random init)"),
    DetectorSpec("owlv2-tiny", "tiny:owlv2", "owlv2", "OWLv2 tiny (random init)"),
)}
DETECTORS: dict[str, str] = {k: s.hub_id for k, s in DETECTOR_SPECS.items() if not s.hub_id.startswith("tiny:")}


class MissingDependency(ImportError):
    """An optional dependency the asked-for step needs is not installed; the message says how to install it."""


def _transformers():
    try:
        import transformers
    except ImportError as exc:
        raise MissingDependency("the detectors need Hugging Face transformers: pip install 'fgclip-utils[detectors]' "
                                "(or pip install transformers)") from exc
    return transformers


def _classes(family: str):
    tf = _transformers()
    if family == "owlvit":
        return tf.OwlViTForObjectDetection, tf.OwlViTProcessor
    return tf.Owlv2ForObjectDetection, tf.Owlv2Processor


def spec_of(name: str) -> DetectorSpec:
    """The detector called ``name``; an unknown name is refused with the known ones."""
    if name not in DETECTOR_SPECS:
        raise KeyError(f"unknown detector {name!r}; expected one of {sorted(DETECTOR_SPECS)}")
    return DETECTOR_SPECS[name]


TINY_DETECTOR_BUILD = 2  # 2: the box head's last layer zero, so boxes sit on the patch grid


def make_tiny_detector(family: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A random-init OWL-ViT or OWLv2 (1 layer, width 32, 192-px images in 6 x 6 patches of 32, so 36 boxes) saved
    with a processor to ``out_dir``, offline: its tokenizer is CLIP's own BPE (open_clip ships the merges file).
    For tests and the smoke profile only: its numbers say nothing about OWL."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode

    tf = _transformers()
    out = Path(out_dir)
    marker = f"complete, build {TINY_DETECTOR_BUILD} seed {seed}\n"
    done = out / "done"
    if (out / "config.json").exists() and done.exists() and done.read_text() == marker:
        return out  # one made by another build of this function (other weights) is made again
    out.mkdir(parents=True, exist_ok=True)
    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.decompress(bpe.read_bytes()).decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = [*symbols, *(s + "</w>" for s in symbols), *(m.replace(" ", "") for m in merges),
             "<|startoftext|>", "<|endoftext|>"]
    atomic_write_bytes(out / "vocab.json", json.dumps({t: i for i, t in enumerate(vocab)}).encode())
    atomic_write_bytes(out / "merges.txt", ("#version: 0.2\n" + "\n".join(merges) + "\n").encode())
    tokenizer = tf.CLIPTokenizer.from_pretrained(str(out), model_max_length=16, pad_token="!")
    model_cls, processor_cls = _classes(family)
    config_cls = tf.OwlViTConfig if family == "owlvit" else tf.Owlv2Config
    config = config_cls(text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16),
                        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                           num_attention_heads=2, image_size=192, patch_size=32),
                        projection_dim=32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config).eval()
        # a random box head throws boxes off the image; with its last layer zero every box is its own patch cell
        # (the model's box bias), as a trained head's boxes sit near the objects
        torch.nn.init.zeros_(model.box_head.dense2.weight)
        torch.nn.init.zeros_(model.box_head.dense2.bias)
    size = {"height": 192, "width": 192}
    image_processor = (tf.Owlv2ImageProcessor(size=size) if family == "owlv2"
                       else tf.OwlViTImageProcessor(size=size, crop_size=size))
    model.save_pretrained(out)
    processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(out)
    done.write_text(marker)
    return out


@dataclass
class Detector:
    """A loaded detector: its spec, model, processor and where it runs."""

    spec: DetectorSpec
    model: torch.nn.Module
    processor: object
    device: torch.device
    source: str  # the folder or hub id it was loaded from

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def max_text_tokens(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    def identity(self) -> dict:
        """What the cache key holds of the detector: name, weights source and revision, precision."""
        revision = getattr(self.model.config, "_commit_hash", None)
        local = Path(self.source)
        if revision is None and local.is_dir():
            weights = sorted(local.glob("*.safetensors")) or sorted(local.glob("*.bin"))
            revision = sha256_json([sha256_file(p) for p in weights])
        return {"detector": self.spec.name, "hub_id": self.spec.hub_id, "revision": revision, "dtype": "float32"}


def load_detector(name: str, device: str | torch.device | None = None, cache_dir: str | os.PathLike | None = None
                  ) -> Detector:
    """The detector ``name`` (a key of :data:`DETECTOR_SPECS`), in eval mode on ``device`` (default: CUDA when
    available). Hub weights go to the Hugging Face cache (``$HF_HOME``); a tiny one is made once under the
    ``detectors`` cache folder."""
    spec = spec_of(name)
    model_cls, processor_cls = _classes(spec.family)
    if spec.hub_id.startswith("tiny:"):
        root = Path(cache_dir) if cache_dir else cache_folder("detectors")
        source = str(make_tiny_detector(spec.family, root / "tiny" / spec.name))
        processor_source = source
    else:
        source, processor_source = spec.hub_id, spec.processor_id or spec.hub_id
    try:
        model = model_cls.from_pretrained(source, cache_dir=weights_dir())
        processor = processor_cls.from_pretrained(processor_source, cache_dir=weights_dir())
    except OSError as exc:
        raise OSError(f"detector {name!r}: cannot load {source} ({exc}); with no network, its weights must already "
                      f"be in the Hugging Face cache") from exc
    device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return Detector(spec, model.eval().to(device), processor, device, source)


@dataclass
class DetectorPredictions:
    """One detector's kept predictions for one split: per ranked annotation, its boxes (P, 4) in pixels (x1, y1,
    x2, y2), confidences (P,) and vocabulary scores (P, N + 1), index 0 the positive."""

    split: str
    n_negatives: int
    annotation_ids: list[int]
    bboxes: list[tuple[float, float, float, float]]  # the annotations' ground-truth boxes (x, y, w, h)
    boxes: list[torch.Tensor]
    scores: list[torch.Tensor]
    total_scores: list[torch.Tensor]
    counts: dict  # too_few_negatives, long_vocabulary, missing_images
    meta: dict


def _boxes_in_pixels(pred_boxes: torch.Tensor, family: str, width: int, height: int) -> torch.Tensor:
    """Normalised (cx, cy, w, h) -> (x1, y1, x2, y2) pixels; OWLv2's are relative to the image padded square."""
    sx, sy = (max(width, height),) * 2 if family == "owlv2" else (width, height)
    cx, cy, w, h = pred_boxes.unbind(-1)
    return torch.stack([(cx - w / 2) * sx, (cy - h / 2) * sy, (cx + w / 2) * sx, (cy + h / 2) * sy], dim=-1)


@torch.no_grad()
def infer_vocabulary(detector: Detector, image, vocabulary: list[str], max_predictions: int = MAX_PREDICTIONS
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """One joint inference of ``vocabulary`` on ``image`` (RGB PIL): the ``max_predictions`` most confident boxes
    (pixels), their confidences and their scores over the vocabulary; None if the vocabulary is too long."""
    inputs = detector.processor(text=vocabulary, images=image, return_tensors="pt", padding=True)
    if inputs["input_ids"].shape[1] > detector.max_text_tokens:
        return None
    inputs = {k: v.to(detector.device) for k, v in inputs.items()}
    out = detector.model(**inputs)
    total = torch.sigmoid(out.logits[0].float()).cpu()  # (boxes, vocabulary)
    conf = total.max(dim=-1).values
    order = torch.argsort(conf, descending=True, stable=True)[:max_predictions]
    boxes = _boxes_in_pixels(out.pred_boxes[0].float().cpu(), detector.spec.family, *image.size)
    return boxes[order], conf[order], total[order]


def _cache_key(detector: Detector, split: Split, records: Iterable[dict], image_root, n: int, max_predictions: int
               ) -> str:
    return sha256_json({"version": DETECT_VERSION, **detector.identity(), "split_sha256": sha256_file(split.path),
                        "images": image_fingerprint(image_root, records), "n_negatives": n,
                        "max_predictions": max_predictions, "mode": "joint"})


def detect_split(detector: Detector, split: Split, image_root: str | os.PathLike, n_negatives: int,
                 available: Iterable[int] | None = None, *, max_predictions: int = MAX_PREDICTIONS,
                 cache_dir: str | os.PathLike | None = None, progress: bool = True) -> DetectorPredictions:
    """The detector's predictions for every annotation of ``split`` with at least ``n_negatives`` negatives whose
    image is available (``available``: image ids; default every image of the split), cached."""
    available = set(split.images) if available is None else set(available)
    anns = [a for a in split.annotations if len(a.negatives) >= n_negatives]
    counts = {"too_few_negatives": len(split.annotations) - len(anns),
              "missing_images": sum(a.image_id not in available for a in anns), "long_vocabulary": 0}
    anns = [a for a in anns if a.image_id in available]
    records = [split.images[i] for i in sorted({a.image_id for a in anns})]
    key = _cache_key(detector, split, records, image_root, n_negatives, max_predictions)
    folder = Path(cache_dir) if cache_dir else cache_folder("detectors")
    entry = folder / f"{detector.name}_{split.name}_{key[:16]}.pt"
    meta = {**detector.identity(), "split": split.name, "n_negatives": n_negatives,
            "max_predictions": max_predictions, "mode": "joint"}
    cached = read_entry(entry, key)
    if cached is not None:
        lengths = cached["lengths"].tolist()
        return DetectorPredictions(split.name, n_negatives, cached["annotation_ids"].tolist(),
                                   [tuple(b) for b in cached["bboxes"].tolist()], list(cached["boxes"].split(lengths)),
                                   list(cached["scores"].split(lengths)), list(cached["total_scores"].split(lengths)),
                                   cached["counts"], {**meta, "from_cache": True})
    ids, bboxes, boxes, scores, totals = [], [], [], [], []
    by_image: dict[int, list] = {}
    for ann in anns:
        by_image.setdefault(ann.image_id, []).append(ann)
    bar = tqdm(total=len(anns), desc=f"{detector.name} · {split.name}", disable=not progress, unit="ann")
    done = 0
    for image_id, image_anns in by_image.items():
        path = image_path(image_root, split.images[image_id])
        try:
            with Image.open(path) as im:
                image = to_rgb(im)
                image.load()
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: cannot be read for detector {detector.name} ({exc})") from exc
        for ann in image_anns:
            start = time.perf_counter()
            result = infer_vocabulary(detector, image, [ann.positive, *ann.negatives[:n_negatives]], max_predictions)
            bar.update(1)
            done += 1
            if done == 2 and len(anns) > 2:  # the second inference (the first warms up) times the rest
                took = time.perf_counter() - start
                print(f"{detector.name} on {split.name}: {len(anns):,} inferences, about "
                      f"{duration_text((len(anns) - 2) * took)} more ({took * 1e3:.0f} ms each, measured here); "
                      "predictions are cached per detector and split")
            if result is None:
                counts["long_vocabulary"] += 1
                continue
            ids.append(ann.id)
            bboxes.append(tuple(float(v) for v in ann.bbox))
            boxes.append(result[0])
            scores.append(result[1])
            totals.append(result[2])
    bar.close()
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary = n_negatives + 1
    write_entry(entry, {"annotation_ids": torch.tensor(ids, dtype=torch.int64),
                        "bboxes": torch.tensor(bboxes, dtype=torch.float64).reshape(-1, 4),
                        "lengths": torch.tensor([len(b) for b in boxes], dtype=torch.int64),
                        "boxes": torch.cat(boxes) if boxes else torch.zeros(0, 4),
                        "scores": torch.cat(scores) if scores else torch.zeros(0),
                        "total_scores": torch.cat(totals) if totals else torch.zeros(0, vocabulary),
                        "counts": counts}, key)
    return DetectorPredictions(split.name, n_negatives, ids, bboxes, boxes, scores, totals, counts,
                               {**meta, "from_cache": False})
