"""The command line: argument handling and exit codes, the JSON records and merged CSV it writes, and
``--skip-existing``."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import fgclip_utils as fg
from fgclip_utils import cli
from fgclip_utils.results import RECORD_FIELDS, SPLIT_METRICS

TINY_RECORD = "synthetic_{split}_random-0_fgclip-tiny_en_fine_grained_ranking.json"


def evaluate(out: Path, *args: str) -> int:
    return cli.main(["evaluate", "--profile", "smoke", "--output", str(out), "--no-progress", *args])


@pytest.fixture
def records(cache_dir, tmp_path):
    """A folder the CLI evaluated fgclip-tiny into (smoke profile)."""
    out = tmp_path / "records"
    assert evaluate(out, "--model", "fgclip-tiny") == cli.EXIT_OK
    return out


def test_evaluate_writes_one_record_per_split_and_the_merged_csv(records):
    names = sorted(p.name for p in records.glob("*.json"))
    assert names == sorted(TINY_RECORD.format(split=s) for s in fg.SPLITS)
    for split in fg.SPLITS:
        rec = fg.read_record(records / TINY_RECORD.format(split=split))
        assert set(RECORD_FIELDS) <= set(rec) and set(SPLIT_METRICS) <= set(rec["metrics"])
        assert (rec["dataset"], rec["split"], rec["task"]) == (f"synthetic_{split}", split, "fine_grained_ranking")
        assert (rec["model"], rec["pretrained"], rec["weights_id"], rec["profile"]) == \
            ("fgclip-tiny", None, "random:0", "smoke")
        assert rec["metrics"]["paper_n"] == fg.get_profile("smoke").paper_n[split]
        assert len(rec["split_file_sha256"]) == 64 and rec["versions"]["torch"]
    table = pd.read_csv(records / "results.csv")
    assert len(table) == 8 and set(table["split"]) == set(fg.SPLITS)
    assert {"model", "pretrained", "dataset", "task", "mean_rank_at_n", "accuracy", "n_kept"} <= set(table.columns)


def test_the_records_hold_the_numbers_the_library_computes(records):
    P = fg.get_profile("smoke")
    bundle = fg.load_clip("fgclip-tiny", device="cpu")
    # from the shared cache
    emb = fg.embed_splits(bundle, fg.load_benchmark(P, "test"), extract=P.extract, progress=False)
    assert all(e.meta["from_cache"] for e in emb.values())
    expected = fg.evaluate_splits(emb, n_negatives=P.paper_n).set_index("split")
    table = pd.read_csv(records / "results.csv").set_index("split")
    for split in fg.SPLITS:
        for column in ("mean_rank_at_n", "accuracy", "mrr", "n_kept", "n"):
            assert table.loc[split, column] == pytest.approx(expected.loc[split, column]), (split, column)


def test_skip_existing_keeps_complete_backbones_and_redoes_damaged_or_other_settings(records, capsys):
    hard = records / TINY_RECORD.format(split="hard")
    color = records / TINY_RECORD.format(split="color")
    before = {p.name: p.read_text() for p in records.glob("*.json")}
    capsys.readouterr()
    assert evaluate(records, "--model", "fgclip-tiny", "fgclip-tiny-w128", "--skip-existing") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "kept fgclip-tiny (random-init)" in out and "fgclip-tiny-w128 (random-init): mean rank" in out
    assert all((records / name).read_text() == text for name, text in before.items())  # untouched
    assert len(list(records.glob("*fgclip-tiny-w128*.json"))) == 8
    assert len(pd.read_csv(records / "results.csv")) == 16

    hard.write_text(hard.read_text()[:40])  # a torn record: the backbone is evaluated again
    assert evaluate(records, "--model", "fgclip-tiny", "--skip-existing") == cli.EXIT_OK
    assert fg.read_record(hard)["metrics"] == json.loads(before[hard.name])["metrics"]

    # a record made with other settings does not count as done
    rec = json.loads(color.read_text())
    rec["settings"]["extract"]["scale_factor"] = 1.5
    color.write_text(json.dumps(rec))
    assert evaluate(records, "--model", "fgclip-tiny", "--skip-existing") == cli.EXIT_OK
    assert "made with other settings" in capsys.readouterr().err
    assert fg.read_record(color)["settings"]["extract"]["scale_factor"] == 1.0

    # without --skip-existing everything is evaluated again
    capsys.readouterr()
    assert evaluate(records, "--model", "fgclip-tiny") == cli.EXIT_OK
    assert "kept fgclip-tiny" not in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "fgclip-tinyy"], "unknown open_clip model 'fgclip-tinyy'; close matches: ['fgclip-tiny'"),
    (["--model", "ViT-B-16", "--pretrained", "opneai"], "close matches: ['openai']"),
    (["--model-set", "laoin"], "unknown model set 'laoin'; close matches: ['laion'"),
    (["--model", "fgclip-tiny", "--splits", "hardd"], "unknown split(s) ['hardd']"),
    (["--model", "fgclip-tiny", "fgclip-tiny-w128", "--pretrained", "a", "b", "c"], "2 --model but 3 --pretrained"),
    (["--pretrained", "openai"], "--pretrained needs --model"),
    ([], "no backbone given"),
    (["--model", "fgclip-tiny", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--model", "fgclip-tiny", "--precision", "fp8"], "--precision must be one of"),
    (["--model", "fgclip-tiny", "--scale-factor", "0"], "--scale-factor must be positive"),
    (["--model", "fgclip-tiny", "--device", "bogus"], "--device 'bogus' is not a device"),
    (["--model", "fgclip-tiny", "--profile", "ful"], "unknown profile 'ful'"),
])
def test_bad_arguments_exit_2_before_any_work(args, message, cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["evaluate", "--output", str(out), "--no-progress", *args]
    if "--profile" not in args:
        argv[1:1] = ["--profile", "smoke"]
    assert cli.main(argv) == cli.EXIT_USAGE
    assert message in capsys.readouterr().err
    assert not list(out.glob("*.json"))


def test_scale_factor_reaches_the_profile_of_evaluate_and_train():
    for command in ("evaluate", "train"):
        args = cli.parser().parse_args([command, "--profile", "smoke", "--model", "fgclip-tiny", "--scale-factor",
                                        "1.5"])
        assert cli._profile(args).extract.scale_factor == 1.5
    default = cli.parser().parse_args(["evaluate", "--profile", "smoke", "--model", "fgclip-tiny"])
    assert cli._profile(default).extract.scale_factor == fg.get_profile("smoke").extract.scale_factor


def test_images_that_could_not_be_had_are_said_beside_the_numbers_and_exit_1(cache_dir, tmp_path, capsys,
                                                                            monkeypatch):
    from fgclip_utils.sweep import backbone_sweep

    real = backbone_sweep.load_benchmark

    def without_image_1(*args, **kwargs):
        bench = real(*args, **kwargs)
        bench.available = {name: ids - {1} for name, ids in bench.available.items()}
        return bench

    monkeypatch.setattr(backbone_sweep, "load_benchmark", without_image_1)
    out = tmp_path / "out"
    assert evaluate(out, "--model", "fgclip-tiny", "--splits", "hard") == cli.EXIT_FAILED
    printed = capsys.readouterr()
    assert "annotations without their image" in printed.out and "INCOMPLETE" in printed.err
    assert evaluate(out, "--model", "fgclip-tiny", "--splits", "hard", "--allow-missing") == cli.EXIT_OK
    capsys.readouterr()
    monkeypatch.setattr(backbone_sweep, "load_benchmark", real)  # the image can be had again
    assert evaluate(out, "--model", "fgclip-tiny", "--splits", "hard", "--skip-existing") == cli.EXIT_OK
    printed = capsys.readouterr()
    assert "made without" in printed.err and "kept fgclip-tiny" not in printed.out
    assert "without their image" not in printed.out


@pytest.mark.parametrize(("field", "value", "reason"), [
    ("split", "color", "its split is 'color', not 'hard'"),
    ("model", "ViT-B-16", "its model is 'ViT-B-16', not 'fgclip-tiny'"),
    ("split_file_sha256", "0" * 64, "its split_file_sha256 is"),
    ("metrics", {}, "it holds no mean rank"),
    ("metrics", {"mean_rank_at_n": 2.0, "accuracy": "abc"}, "its accuracy is 'abc', not a finite number"),
])
def test_skip_existing_redoes_a_record_of_another_identity_or_with_bad_numbers(records, capsys, field, value,
                                                                               reason):
    hard = records / TINY_RECORD.format(split="hard")
    good = fg.read_record(hard)
    hard.write_text(json.dumps({**good, field: value}))
    capsys.readouterr()
    assert evaluate(records, "--model", "fgclip-tiny", "--skip-existing") == cli.EXIT_OK
    printed = capsys.readouterr()
    assert reason in printed.err and "kept fgclip-tiny" not in printed.out
    assert fg.read_record(hard)["metrics"] == good["metrics"]  # made again, as it was
    table = pd.read_csv(records / "results.csv")
    assert sorted(table["split"]) == sorted(fg.SPLITS)  # each split once


def test_runs_of_other_settings_into_one_folder_keep_each_others_records(records):
    before = {p.name: p.read_text() for p in records.glob("*.json")}
    assert evaluate(records, "--model", "fgclip-tiny", "--splits", "hard", "--precision", "bf16") == cli.EXIT_OK
    assert all((records / name).read_text() == text for name, text in before.items())
    (new,) = set(p.name for p in records.glob("*.json")) - set(before)
    assert new.startswith("synthetic_hard_random-0-s") and fg.read_record(records / new)["settings"]["extract"][
        "precision"] == "bf16"


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(records, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert evaluate(a_file, "--model", "fgclip-tiny") == cli.EXIT_USAGE
    assert f"--output {a_file} is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["build", str(records), "--output", str(tmp_path)]) == cli.EXIT_USAGE  # a folder, not a CSV
    err = capsys.readouterr().err
    assert err.startswith("fgclip build: error:") and str(tmp_path) in err and len(err.strip().splitlines()) == 1
    # a read-only folder (this machine builds as root, whom chmod does not stop, so the OS answer is stood in for)
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    real_access = cli.os.access
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli.os, "access", lambda p, mode: False if Path(p) == read_only else real_access(p, mode))
        assert evaluate(read_only, "--model", "fgclip-tiny") == cli.EXIT_USAGE
    assert f"--output {read_only} is not writable" in capsys.readouterr().err
    assert not list(read_only.iterdir())  # refused before any work


def test_build_refuses_records_of_other_profiles_or_n_unless_allowed(records, tmp_path, capsys):
    import json

    table = pd.read_csv(records / "results.csv")
    assert set(table["profile"]) == {"smoke"} and table["note"].str.contains("smoke profile").all()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in records.glob("*.json"):
        (mixed / path.name).write_bytes(path.read_bytes())
    hard = mixed / TINY_RECORD.format(split="hard")
    full = json.loads(hard.read_text())
    full["metrics"]["paper_n"] = 5  # the same split ranked at another N
    (mixed / hard.name.replace("random-0", "random-9")).write_text(json.dumps(full))
    assert cli.main(["build", str(mixed)]) == cli.EXIT_USAGE
    assert "N 10 against 5" in capsys.readouterr().err
    full["profile"] = "full"
    (mixed / hard.name.replace("random-0", "random-9")).write_text(json.dumps(full))
    assert cli.main(["build", str(mixed)]) == cli.EXIT_USAGE
    assert "profile 'smoke' against 'full'" in capsys.readouterr().err
    assert cli.main(["build", str(mixed), "--allow-mixed"]) == cli.EXIT_OK
    merged = pd.read_csv(mixed / "results.csv")
    assert len(merged) == 9 and set(merged["profile"]) == {"smoke", "full"}


def test_models_file_pairs_and_errors_name_the_line(cache_dir, tmp_path, capsys):
    good = tmp_path / "models.txt"
    good.write_text("# tiny panel\nfgclip-tiny\n\nfgclip-tiny-w128, none  # random init\n")
    assert fg.resolve_backbones(models_file=good) == [("fgclip-tiny", None), ("fgclip-tiny-w128", None)]
    assert fg.resolve_backbones(["fgclip-tiny"], [], good, "tiny") == list(fg.model_set("tiny").pairs())
    bad = tmp_path / "bad.txt"
    bad.write_text("fgclip-tiny\nViT-B-16 openai extra\n")
    assert evaluate(tmp_path / "o", "--models-file", str(bad)) == cli.EXIT_USAGE
    assert f"{bad}, line 2: expected 'model,pretrained'" in capsys.readouterr().err
    assert evaluate(tmp_path / "o", "--models-file", str(tmp_path / "absent.txt")) == cli.EXIT_USAGE
    assert "cannot read the models file" in capsys.readouterr().err


def test_a_backbone_that_fails_to_load_exits_1_and_the_others_are_written(cache_dir, tmp_path, capsys):
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a state dict")
    out = tmp_path / "out"
    assert evaluate(out, "--model", "fgclip-tiny", "fgclip-tiny-w128", "--pretrained", "none", str(broken)) \
        == cli.EXIT_FAILED
    assert "FAILED fgclip-tiny-w128 (" in capsys.readouterr().err
    assert len(list(out.glob("*_fgclip-tiny_en_*.json"))) == 8 and not list(out.glob("*w128*.json"))


def test_an_interruption_exits_130_and_keeps_what_was_written(cache_dir, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fgclip_utils.sweep.backbone_sweep.sweep_vanilla", interrupted)
    assert evaluate(tmp_path / "out", "--model", "fgclip-tiny") == cli.EXIT_INTERRUPTED
    assert "--skip-existing" in capsys.readouterr().err


def test_build_merges_records_and_names_a_file_that_is_not_one(records, tmp_path, capsys):
    csv = tmp_path / "merged.csv"
    assert cli.main(["build", str(records), "--output", str(csv)]) == cli.EXIT_OK
    assert len(pd.read_csv(csv)) == 8
    (records / "notes.json").write_text('{"hello": 1}')
    assert cli.main(["build", str(records)]) == cli.EXIT_USAGE
    assert "notes.json: not an evaluation record: it lacks the fields" in capsys.readouterr().err
    assert cli.main(["build", str(tmp_path / "nowhere")]) == cli.EXIT_USAGE


def test_train_writes_vanilla_and_head_records(cache_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["train", "--profile", "smoke", "--model", "fgclip-tiny", "--kind", "paper-linear",
                     "--output", str(out), "--no-progress"])
    assert code == cli.EXIT_OK
    printed = capsys.readouterr().out
    assert "paper-linear" in printed and "gain" in printed and "NOTE: smoke profile" in printed
    head = sorted(out.glob("*_en_fine_grained_ranking_paper-linear.json"))
    assert len(head) == 8 and len(list(out.glob("*_en_fine_grained_ranking.json"))) == 8
    rec = fg.read_record(head[0])
    assert rec["method"] == "paper-linear" and rec["task"] == "fine_grained_ranking_paper-linear"
    assert cli.main(["train", "--model", "fgclip-tiny", "--kind", "paper-lineer", "--output", str(out)]) \
        == cli.EXIT_USAGE
    assert "unknown head kind 'paper-lineer'" in capsys.readouterr().err


def test_models_lists_the_named_sets(capsys):
    assert cli.main(["models"]) == cli.EXIT_OK
    listed = capsys.readouterr().out
    for name in ("tiny", "openai", "laion", "siglip", "all-small", "sweep"):
        assert f"\n{name} " in "\n" + listed
    assert cli.main(["models", "--set", "tiny", "--sizes"]) == cli.EXIT_OK
    assert "fgclip-tiny-w192" in capsys.readouterr().out
    assert cli.main(["models", "--set", "tinyy"]) == cli.EXIT_USAGE


def test_python_dash_m_and_the_console_script_are_wired():
    help_text = subprocess.run([sys.executable, "-m", "fgclip_utils", "--help"], capture_output=True, text=True,
                               timeout=120)
    assert help_text.returncode == 0 and "evaluate" in help_text.stdout and "exit codes" in help_text.stdout
    usage = subprocess.run([sys.executable, "-m", "fgclip_utils", "evaluate", "--max-loaded", "x"],
                           capture_output=True, text=True, timeout=120)
    assert usage.returncode == cli.EXIT_USAGE
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("fgclip") == "fgclip_utils.cli:main"
