import pytest

from fgclip_utils.environment import cache_usage, environment_report


def test_environment_report_sees_a_matched_torch_install():
    report = environment_report()
    assert report["torch"] and report["open_clip_torch"] and report["torchvision_ops"] is True
    assert report["device"] == "cpu" or report["cuda"]


def test_cache_usage_counts_files_and_sizes(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FGCLIP_FIGURES", str(tmp_path / "figs"))
    (cache_dir / "embeddings").mkdir(parents=True)
    (cache_dir / "embeddings" / "a.pt").write_bytes(b"x" * (3 * 2**20))
    usage = cache_usage().set_index("what")
    assert usage.loc["embeddings", "files"] == 1 and usage.loc["embeddings", "MB"] == 3.0
    assert usage.loc["cache root", "MB"] == 3.0 and usage.loc["figures", "files"] == 0


@pytest.mark.parametrize(("value", "message"), [
    ("file", "is a file, not a folder"),
    ("~nouser-fgclip/x", "no such user's home folder"),
])
def test_a_cache_root_that_cannot_be_used_is_one_clear_error(tmp_path, monkeypatch, capsys, value, message):
    from fgclip_utils import cli
    from fgclip_utils.cache import CacheRootError, cache_root

    if value == "file":
        value = str(tmp_path / "a-file")
        (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("FGCLIP_CACHE", value)
    with pytest.raises(CacheRootError, match=message):
        cache_root()
    assert cli.main(["figures", "--profile", "smoke", "--out", str(tmp_path / "figs")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_models_file_that_is_not_utf8_is_named(tmp_path):
    from fgclip_utils.extraction.model_sets import read_models_file

    path = tmp_path / "models.txt"
    path.write_bytes(b"fgclip-tiny\n\xff\xfe\n")
    with pytest.raises(ValueError, match=r"models.txt: the models file is not UTF-8 text \(byte 12\)"):
        read_models_file(path)
