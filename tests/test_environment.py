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
