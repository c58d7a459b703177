"""Every external file the study downloads, in one table: the only place a URL appears in the package.

An :class:`Asset` is keyed ``<source>/<path in its repository>`` (``"fgovd/benchmarks/pattern.json"``,
``"fgclip/checkpoints/fg-ovd_linear-mlp.pt"``); it holds its URL, pinned to a commit (never a branch) or to a
release, the hash that names the exact file, its size cap and time budget, and where it lives in the cache.

Hashes: FG-OVD split files by their git blob id (``sha1("blob <size>\\0" + content)``, which the repository
itself records), the FG-CLIP checkpoints by sha256 (git blob id for the two whose sha256 is not known here).
The Karpathy caption files and the COCO caption annotations have no published hash: their sha256 is recorded
on first download (``.recorded-hashes.json`` beside them) and every later use is verified against it.
``$FGCLIP_ASSET_HASHES`` names a JSON file of ``{key: "sha256:…" | "gitblob:…"}`` that replaces known hashes;
the offline rehearsal of the ``full`` profile, which serves files of its own making, is what it is for.

COCO images are not listed one by one: their URLs come from the split files (``coco_url``) or from
:func:`coco_image_url` for the caption splits, and each image is verified by decoding it.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic_io import atomic_write_json
from ..cache import cache_folder
from .fgovd import SPLITS

ALLOWED_SCHEMES = ("https", "http")
ASSET_HASHES_ENV = "FGCLIP_ASSET_HASHES"
RECORDED_HASHES = ".recorded-hashes.json"
MiB = 1 << 20

FGOVD_REPO, FGOVD_COMMIT = "lorebianchi98/FG-OVD", "d124bc5e59f4aacd33133e8b745c8252d4b05030"
FGCLIP_REPO, FGCLIP_COMMIT = "lorebianchi98/FG-CLIP", "695c5d6aa467859326ca6bf603a6587716dabfe4"
RAW_GITHUB = "https://raw.githubusercontent.com"
# the Karpathy splits in COCO caption format, as LAION's CLIP_benchmark downloads them (release 1.0.0)
KARPATHY_RELEASE = "https://github.com/mehdidc/retrieval_annotations/releases/download/1.0.0"
COCO_SITE = "http://images.cocodataset.org"

# the FG-OVD repository folder of each subset
FGOVD_SUBSETS = {"test": "benchmarks", "train": "training_sets", "val": "validation_sets"}
# git blob ids at FGOVD_COMMIT, per split file: (benchmarks, training_sets, validation_sets)
_FGOVD_BLOBS = {
    "1_attributes.json": ("fd77be3a90e729362b3d4c0347a63050352abe34", "64023fb23dbdadd475f77f198aac836db63d4caa",
                          "15ad13699e041b7e16a8f0f603e913877b4f6942"),
    "2_attributes.json": ("52ee93eb944a89fe0d2edd75801e2e60461f254d", "d658ae2afcc11ed17a54c8096c2cc7d30c1dd936",
                          "c328cc7bdc6d3ead0e9c886101929df31de461c5"),
    "3_attributes.json": ("b446db2b677744c4d200df303b25ca4a14cdad8b", "fa8405182e8e6219c5a05970fa9d80b76e4bea1d",
                          "10f9efab4f9a21d9536af6f4af3259fe9e55e7b7"),
    "shuffle_negatives.json": ("b542545a604439eaa8c779441753fd4510b36386", "547b2ce4e09112fdf673e4d372f650a09b36fae1",
                               "537c28ada2799f27a7ed3cabc38be55e72fa92d2"),
    "color.json": ("102d0e761b3f7085d6b626e9f3a13bab14b0ec09", "3d054af4a991115fdedada29218a4099c2cb7dc6",
                   "b7175a21e29e11a8f4a25639378b5ce8529443fc"),
    "material.json": ("188f5ba237788a66762b1d2176c79f5393653697", "91ef2f0300954f68b0ed31f58a6fcc80df72f0df",
                      "bdfe60861fd6ee9770ba6b4178e3317078bcd818"),
    "pattern.json": ("19475cf2bd66f067ad3035ce9e232c52d18e9149", "5ef1c75fed2288df681faba9a060afcd1de09d67",
                     "63254ba5835133460f04341e60779d6f804c581f"),
    "transparency.json": ("7edfb7ba959886db07f9a712f097c60604f26123", "f7cb7ddad3435c5bc2979a9288dec68986e8d014",
                          "ee6c6e21914ed06a3ccc5542f21c45a5c837fe61"),
}
# the authors' released heads: file -> hash (STUDY.md 7.4)
_FGCLIP_HASHES = {
    "triplet_linear-mlp.pt": "sha256:7e3b5867a94fb72a6d72129ad27251b5ffcda01ff9c24bf584445a22618a6910",
    "fg-ovd_linear-mlp.pt": "sha256:55d3b5acc6ee3787fcbad6a66bf847c1514ca5b971ba6174c4cf3d045a9a522a",
    "triplet_linear-mlp_te-freezed.pt": "sha256:a50497eede6affb2ad68006179bf9780aa3b0eef649d151cc79f9bdc9dedca46",
    "fg-ovd_linear-mlp_te-freezed.pt": "sha256:fbd1fce8fdca190d12015b106e74ace2b978d83aa6c7fc96c6a38ab7240c04d0",
    "triplet_linear-mlp_ve-freezed.pt": "sha256:18c19888276a0e7d47a32055b2403645587030638417aed83803af469f61e268",
    "fg-ovd_linear-mlp_ve-freezed.pt": "sha256:36644c38c22abb04874749f6f3379e4598af6a75b1b5203840faffaa27e0186b",
    "triplet_non-linear-mlp.pt": "gitblob:61960012429d3979594e0a3eb2160ec73424ed2a",
    "fg-ovd_non-linear-mlp.pt": "gitblob:8af714883585b7f0c1f2992362a7eac41040f092",
}
KARPATHY_SPLIT_FILES = {"train": "coco_train_karpathy.json", "val": "coco_val_karpathy.json",
                        "test": "coco_test_karpathy.json"}


def file_hash(path: str | os.PathLike, algorithm: str) -> str:
    """``sha256`` of a file's bytes, or its ``gitblob`` id (git's sha1 of ``"blob <size>\\0"`` + content)."""
    path = Path(path)
    if algorithm == "sha256":
        digest = hashlib.sha256()
    elif algorithm == "gitblob":
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size, usedforsecurity=False)
    else:
        raise ValueError(f"unknown hash algorithm {algorithm!r}; expected 'sha256' or 'gitblob'")
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return f"{algorithm}:{digest.hexdigest()}"


def _overrides() -> dict[str, str]:
    path = os.environ.get(ASSET_HASHES_ENV)
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} (from ${ASSET_HASHES_ENV}): not a readable JSON file of hashes ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{path} (from ${ASSET_HASHES_ENV}): expected {{asset key: 'sha256:…'}}")
    return data


@dataclass(frozen=True)
class Asset:
    key: str  # "<source>/<path in its repository>"
    url: str  # pinned to a commit or a release
    folder: str  # cache folder (fgclip_utils.cache.CACHE_FOLDERS)
    path: str  # path inside the cache folder
    hash: str | None  # "sha256:<hex>" or "gitblob:<sha1>"; None: recorded on first download
    max_bytes: int  # a larger download is refused
    deadline: float  # seconds one download may take, retries included

    def local_path(self, folder: str | os.PathLike | None = None) -> Path:
        """Where the file is kept: ``folder`` (default: the asset's cache folder) / its path."""
        return (Path(folder) if folder else cache_folder(self.folder)) / self.path

    def expected_hash(self, path: str | os.PathLike | None = None) -> str | None:
        """The hash the file must have: an override, the known hash, or the one recorded beside ``path``."""
        known = _overrides().get(self.key, self.hash)
        if known is not None or path is None:
            return known
        return _recorded(Path(path)).get(self.key)

    def verify(self, path: str | os.PathLike) -> bool:
        """True only for the file this asset's known (or first recorded) hash names."""
        path = Path(path)
        expected = self.expected_hash(path)
        if expected is None or not path.is_file():
            return False
        return file_hash(path, expected.split(":", 1)[0]) == expected

    def record_hash(self, path: str | os.PathLike) -> str:
        """Record the sha256 of ``path`` as this asset's hash (first download of a file with no published hash)."""
        path = Path(path)
        value = file_hash(path, "sha256")
        table = _recorded(path)
        table[self.key] = value
        atomic_write_json(path.parent / RECORDED_HASHES, table)
        return value


def _recorded(path: Path) -> dict[str, str]:
    try:
        data = json.loads((path.parent / RECORDED_HASHES).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _fgovd(subset: str, file_name: str) -> Asset:
    folder = FGOVD_SUBSETS[subset]
    blob = _FGOVD_BLOBS[file_name][list(FGOVD_SUBSETS).index(subset)]
    path = f"{folder}/{file_name}"
    return Asset(f"fgovd/{path}", f"{RAW_GITHUB}/{FGOVD_REPO}/{FGOVD_COMMIT}/{path}", "fgovd", path,
                 f"gitblob:{blob}", max_bytes=512 * MiB, deadline=1800.0)


def _fgclip(file_name: str) -> Asset:
    path = f"checkpoints/{file_name}"
    return Asset(f"fgclip/{path}", f"{RAW_GITHUB}/{FGCLIP_REPO}/{FGCLIP_COMMIT}/{path}", "fgclip_checkpoints",
                 file_name, _FGCLIP_HASHES[file_name], max_bytes=64 * MiB, deadline=600.0)


def _karpathy(file_name: str) -> Asset:
    return Asset(f"retrieval_annotations/{file_name}", f"{KARPATHY_RELEASE}/{file_name}", "coco_captions",
                 file_name, None, max_bytes=512 * MiB, deadline=1800.0)


ASSETS: dict[str, Asset] = {a.key: a for a in (
    *(_fgovd(subset, s.file_name) for subset in FGOVD_SUBSETS for s in SPLITS.values()),
    *map(_fgclip, _FGCLIP_HASHES),
    *map(_karpathy, KARPATHY_SPLIT_FILES.values()),
    # COCO 2014 caption annotations: the Karpathy "restval" images and their captions (warm-up training only)
    Asset("coco/annotations/annotations_trainval2014.zip", f"{COCO_SITE}/annotations/annotations_trainval2014.zip",
          "coco_captions", "annotations_trainval2014.zip", None, max_bytes=400 * MiB, deadline=3600.0),
)}

# COCO images, one by one (verified by decoding)
COCO_IMAGE_URL = COCO_SITE + "/{folder}/{file_name}"
COCO_IMAGE_MAX_BYTES = 64 * MiB
COCO_IMAGE_DEADLINE = 300.0


def asset(key: str) -> Asset:
    if key not in ASSETS:
        raise KeyError(f"unknown asset {key!r}; e.g. {sorted(ASSETS)[:3]}")
    return ASSETS[key]


def fgovd_asset(file_name: str, subset: str = "test") -> Asset:
    """The FG-OVD split file ``file_name`` of ``subset`` (test, train or val)."""
    if subset not in FGOVD_SUBSETS:
        raise KeyError(f"unknown subset {subset!r}; expected one of {sorted(FGOVD_SUBSETS)}")
    return asset(f"fgovd/{FGOVD_SUBSETS[subset]}/{file_name}")


def coco_image_url(folder: str, file_name: str) -> str:
    """The URL of one COCO image (``folder`` like ``val2014``)."""
    return COCO_IMAGE_URL.format(folder=folder, file_name=file_name)
