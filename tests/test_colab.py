"""The Colab install never replaces what a running kernel uses, every notebook installs the same way, and the
Colab conveniences do nothing elsewhere."""
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest

from fgclip_utils import colab, colab_install

ROOT = Path(__file__).resolve().parents[1]


def test_constraints_pin_every_installed_kernel_package():
    pins = colab_install.installed_versions()
    assert {"torch", "numpy", "ipykernel", "ipywidgets"} <= set(pins)  # installed here, so pinned
    text = colab_install.constraints({"torch": "2.9.0", "ipywidgets": "7.7.1"})
    assert text == "ipywidgets==7.7.1\ntorch==2.9.0\n"


def test_install_command_installs_the_core_package_only_under_the_constraints(tmp_path):
    cmd = colab_install.install_command(ROOT, tmp_path / "pins.txt")
    assert cmd[:3] == [sys.executable, "-m", "pip"] and "--constraint" in cmd
    assert cmd[cmd.index("--constraint") + 1] == str(tmp_path / "pins.txt")
    assert cmd[-1] == str(ROOT) and not any("[" in part for part in cmd)  # no extras (Jupyter, tests)


def test_every_notebook_has_the_same_safe_install_cell():
    cells = []
    for path in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        sources = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        install = [s for s in sources if "google.colab" in s]
        assert len(install) == 1, path.name
        cells.append(install[0])
        assert "colab_install.py" in install[0] and "pip\", \"install" not in install[0], path.name
    assert len(set(cells)) == 1, "the install cell differs between notebooks"


def test_parameters_cell_has_colab_forms():
    for name in ("01_clip_fine_grained_evaluation", "02_projection_heads", "03_umap_attribute_separability"):
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, name
        source = "".join(params[0]["source"])
        assert 'profile = "auto"  # @param ["auto", "smoke", "full"]' in source, name
        assert "drive_cache = False  # @param" in source, name


def test_outside_colab_drive_is_left_alone_and_outputs_are_zipped(tmp_path, monkeypatch):
    monkeypatch.setenv("FGCLIP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("FGCLIP_FIGURES", str(tmp_path / "figures"))
    assert not colab.in_colab() and colab.use_drive_cache(True) is None
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "fig01_x_smoke.png").write_bytes(b"png")
    table = tmp_path / "cache" / "results" / "smoke" / "run" / "nb01_vanilla_clip.csv"
    table.parent.mkdir(parents=True)
    table.write_text("a\n1\n")
    (tmp_path / "cache" / "embeddings").mkdir()
    (tmp_path / "cache" / "embeddings" / "big.pt").write_bytes(b"x" * 100)
    made = colab.archive_outputs(tmp_path / "out.zip")
    names = set(zipfile.ZipFile(made).namelist())
    assert "fgclip-outputs/figures/fig01_x_smoke.png" in names
    assert "fgclip-outputs/results/smoke/run/nb01_vanilla_clip.csv" in names
    assert not any("embeddings" in n for n in names)  # caches stay out of the archive


def test_transformers_is_added_only_when_missing(tmp_path, monkeypatch):
    assert colab_install.detector_command(tmp_path / "pins.txt") is None  # installed here (the test extra)
    assert "transformers" in colab_install.KEEP  # and so pinned, never replaced
    real = colab_install.metadata.version

    def without_transformers(name):
        if name == "transformers":
            raise colab_install.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(colab_install.metadata, "version", without_transformers)
    cmd = colab_install.detector_command(tmp_path / "pins.txt")
    assert cmd[-1] == colab_install.DETECTOR_REQUIREMENT and cmd[cmd.index("--constraint") + 1] == str(
        tmp_path / "pins.txt")


def test_every_notebook_asks_colab_for_a_gpu_and_its_param_defaults_are_options():
    import ast
    import re

    for path in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        nb = json.loads(path.read_text())
        assert nb["metadata"].get("accelerator") == "GPU", path.name  # the badge opens a GPU runtime
        assert "colab" in nb["metadata"], path.name
        for cell in nb["cells"]:
            for line in "".join(cell["source"]).splitlines():
                form = re.match(r"\s*\w+ = (.+?)\s+# @param (.+)$", line)
                if not form:
                    continue
                default, spec = ast.literal_eval(form.group(1)), form.group(2)
                if spec.startswith("["):
                    assert default in ast.literal_eval(spec), (path.name, line)
                else:
                    assert spec == '{type:"boolean"}' and isinstance(default, bool), (path.name, line)


@pytest.mark.parametrize("images_on_drive", [False, True])
def test_the_storage_plan_keeps_images_local_and_the_rest_on_drive(tmp_path, monkeypatch, capsys, images_on_drive):
    from fgclip_utils.cache import CACHE_ENV, FIGURES_ENV, IMAGES_ENV, WEIGHTS_ENV, images_dir, weights_dir
    from fgclip_utils.data.coco_images import default_image_root

    for name in (CACHE_ENV, FIGURES_ENV, IMAGES_ENV, WEIGHTS_ENV):
        monkeypatch.setenv(name, "")  # restored after the test, whatever the plan sets
    drive, local = tmp_path / "drive", tmp_path / "local"
    assert colab.apply_storage_plan(drive, images_on_drive, local_images=str(local)) == drive / "cache"
    assert weights_dir() == str(drive / "weights")
    expected = drive / "cache" / "coco" if images_on_drive else local
    assert images_dir() == default_image_root() == expected
    assert str(expected) in capsys.readouterr().out


@pytest.mark.parametrize("images_on_drive", [False, True])
def test_a_full_run_on_a_simulated_colab_disk_fits_or_stops_before_any_download(tmp_path, monkeypatch,
                                                                                images_on_drive):
    """Colab's disks simulated: 100 GB free on the runtime's, 15 GB on Drive. The images of a full run with stage 1
    (FG-OVD test, Karpathy test + val, Karpathy train + restval) fit on the runtime's disk; on Drive they stop
    the fetch before it starts, naming the settings that make it fit. The README's plan says the same."""
    from collections import namedtuple

    from fgclip_utils.cache import CACHE_ENV, FIGURES_ENV, IMAGES_ENV, WEIGHTS_ENV, InsufficientSpace
    from fgclip_utils.data import coco_images
    from fgclip_utils.data.coco_images import check_space, default_image_root

    for name in (CACHE_ENV, FIGURES_ENV, IMAGES_ENV, WEIGHTS_ENV):
        monkeypatch.setenv(name, "")
    drive, local = tmp_path / "drive", tmp_path / "local"
    drive.mkdir(), local.mkdir()
    usage = namedtuple("usage", "total used free")
    free = {drive: 15e9, local: 100e9}
    monkeypatch.setattr(coco_images.shutil, "disk_usage",
                        lambda p: usage(0, 0, next(f for root, f in free.items() if Path(p).is_relative_to(root))))
    colab.apply_storage_plan(drive, images_on_drive, local_images=str(local))
    plan = importlib.util.spec_from_file_location("colab_plan", ROOT / "benchmarks" / "colab_plan.py")
    module = importlib.util.module_from_spec(plan)
    plan.loader.exec_module(module)
    images = sum(n for _, _, n, _, _ in module.steps(6000))
    released_kinds = [k for k in module.PAPER_KINDS if k != "paper-attention"]
    assert images == 6000 + 10_000 + 113_287
    if images_on_drive:
        advice = r"untick images_on_drive.*warmup_start='released' with paper_kinds without 'paper-attention'"
        with pytest.raises(InsufficientSpace, match=advice):
            check_space(images, default_image_root())
        # no attention warm-up was released: paper-attention keeps stage 1 and its images unless left out
        assert sum(n for _, _, n, _, _ in module.steps(6000, "released")) == images
        released = sum(n for _, _, n, _, _ in module.steps(6000, "released", released_kinds))
        check_space(released, default_image_root())  # what the message advises fits
    else:
        check_space(images, default_image_root())
    stored = module.storage(6000, 512, images_on_drive=images_on_drive)
    assert stored["fits"] == (not images_on_drive)
    if images_on_drive:
        assert stored["drive_gb"] > 15 and stored["local_gb"] == 0
        assert "warmup_start='released'" in stored["advice"] and "untick images_on_drive" in stored["advice"]
        assert not module.storage(6000, 512, images_on_drive=True, warmup_start="released")["fits"]
        assert module.storage(6000, 512, images_on_drive=True, warmup_start="released", kinds=released_kinds)["fits"]
    else:
        assert stored["drive_gb"] < 15 < stored["local_gb"] < 100 and not stored["advice"]
