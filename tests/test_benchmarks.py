"""The benchmark scripts run end to end on the tiny model and report what they claim to."""
import importlib.util
import shutil
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_extract_on_the_synthetic_benchmark(capsys):
    out = load("bench_extract").main(["--objects", "12", "--splits", "hard", "color", "--batch-size", "8",
                                      "--workers", "1", "--device", "cpu"])
    printed = capsys.readouterr().out
    assert out["n"] == 24 and out["stats"].crops == 12  # both splits hold the same 12 objects
    assert out["max_abs_diff_image"] < 1e-5 and out["max_abs_diff_text"] < 1e-5
    assert out["naive_s"] > 0 and out["ratio"] == pytest.approx(out["naive_s"] / out["ours_s"])
    assert out["flops"]["image"] > 0 and out["roof_tflops"] > 0
    for line in ("naive loop:", "pipeline:", "speed-up:", "GFLOP per crop", "device roof:", "where the crop time went"):
        assert line in printed


def test_bench_extract_on_an_image_folder(synth_bench, tmp_path, capsys):
    _, root = synth_bench
    folder = tmp_path / "imgs"
    folder.mkdir()
    for path in sorted(Path(root).rglob("*.png"))[:3]:
        shutil.copy(path, folder / path.name)
    out = load("bench_extract").main(["--images", str(folder), "--workers", "0", "--device", "cpu"])
    assert out["n"] == 12 and out["max_abs_diff_image"] < 1e-5
    assert "12 quadrant crops" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no images"):
        load("bench_extract").main(["--images", str(tmp_path / "empty_or_missing")])


def test_bench_extract_memory_measures_a_fresh_process(tmp_path, capsys):
    rows = load("bench_extract_memory").main(["--sizes", "16", "--bench-dir", str(tmp_path), "--workers", "1"])
    assert len(rows) == 1 and rows[0]["crops"] == 16
    assert rows[0]["peak_mib"] >= rows[0]["baseline_mib"] > 0 and rows[0]["worker_peak_mib"] > 0
    assert "16 crops" in capsys.readouterr().out and (tmp_path / "synth-16" / "manifest.json").exists()


def test_photo_folder_makes_coco_sized_jpegs(tmp_path):
    from PIL import Image

    files = load("photo_folder").make_photo_folder(tmp_path / "photos", n=4)
    assert [f.name for f in files] == ["0000.jpg", "0001.jpg", "0002.jpg", "0003.jpg"]
    for f in files:
        with Image.open(f) as im:
            assert im.format == "JPEG" and im.size in load("photo_folder").COCO_SIZES


def test_bench_shared_decode_reports_identical_embeddings(tmp_path, capsys):
    folder = tmp_path / "photos"
    load("photo_folder").make_photo_folder(folder, n=6)
    out = load("bench_shared_decode").main(["--images", str(folder), "--workers", "0", "--device", "cpu"])
    assert out["identical"] and out["alone_s"] > 0 and out["ratio"] == pytest.approx(out["alone_s"] / out["shared_s"])
    assert "24 quadrant crops" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="resize differently"):
        load("bench_shared_decode").main(["--images", str(folder), "--models", "fgclip-tiny", "fgclip-tiny-w192"])


def test_bench_bootstrap_times_one_interval_and_one_table_b_row(capsys):
    assert load("bench_bootstrap").main(["--n", "500", "--n-boot", "200"]) == 0
    out = capsys.readouterr().out
    assert "n=500, 200 resamples" in out and "one Table B row (8 splits x 500 annotations" in out


def test_colab_plan_prints_each_step_for_each_gpu(capsys):
    assert load("colab_plan").main(["--model", "fgclip-tiny", "--fgovd-images", "100"]) == 0
    out = capsys.readouterr().out
    assert "| step | notebook | images (GB, runtime disk) | T4 min | L4 min | A100 min |" in out
    assert "| 113,287 (18.1) |" in out and "| 100 (0.0) |" in out
    assert "runtime disk: 19.7 of 100 GB free; Drive: 0.8 of 15 GB free" in out and out.rstrip().endswith("fits")
    assert "| paper-attention: " in out and "| paper-linear-text: " in out  # each head's stage 1, per GPU
    assert load("colab_plan").main(["--model", "fgclip-tiny", "--images-on-drive"]) == 1
    assert "does NOT fit: untick images_on_drive" in capsys.readouterr().out


def test_bench_colab_memory_measures_each_step_in_a_fresh_process(capsys):
    rows = load("bench_colab_memory").main(["--scale", "0.002", "--dim", "32"])
    assert [r["step"] for r in rows] == ["stage1", "retrieval"]
    stage1, retrieval = rows
    assert (stage1["images"], stage1["captions"]) == (227, 1135)  # 0.2% of Karpathy train + restval, 5 captions each
    assert (retrieval["images"], retrieval["captions"]) == (10, 50)
    for row in rows:
        assert row["peak_mib"] >= row["baseline_mib"] > 0 and row["added_mib"] == pytest.approx(
            row["peak_mib"] - row["baseline_mib"])
    assert "Colab has 12.7 GB" in capsys.readouterr().out


def test_colab_plan_times_the_full_profiles_detectors_from_their_flops():
    rows = load("colab_plan").detector_minutes(18_000, {"T4": 8.1}, flops_of=lambda name: 415e9)
    assert [r[0] for r in rows] == ["owlvit-b16", "owlvit-l14", "owlv2-b16", "owlv2-l14"]
    name, gflop, minutes = rows[0]
    assert gflop == 415 and minutes["T4"] == pytest.approx(18_000 * 415e9 / (8.1e12 * 0.5) / 60)  # 30.7 min
