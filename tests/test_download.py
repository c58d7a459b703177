import pytest

from fgclip_utils.data.download import DownloadError, download_file, download_many


def test_downloads_and_skips_a_valid_cached_file(server, tmp_path):
    url = server.add("a.bin", b"x" * 1000)
    dest = tmp_path / "a.bin"
    assert download_file(url, dest) == dest and dest.read_bytes() == b"x" * 1000
    download_file(url, dest)
    assert server.hits["/a.bin"] == 1  # never downloaded twice


def test_404_fails_at_once_with_url_and_leaves_nothing(server, tmp_path):
    dest = tmp_path / "missing.bin"
    with pytest.raises(DownloadError, match=r"missing\.bin.*HTTP 404"):
        download_file(server.url("missing.bin"), dest, backoff=0)
    assert server.hits["/missing.bin"] == 1  # a 4xx is not retried
    assert list(tmp_path.iterdir()) == []


def test_truncated_body_is_retried_then_rejected_and_never_kept(server, tmp_path):
    url = server.add("t.bin", b"y" * 5000, truncate_to=1200)
    dest = tmp_path / "t.bin"
    with pytest.raises(DownloadError, match="t.bin"):
        download_file(url, dest, retries=2, backoff=0)
    assert server.hits["/t.bin"] == 3
    assert list(tmp_path.iterdir()) == []  # no partial file, no temp file


def test_truncated_download_does_not_replace_a_good_cached_copy(server, tmp_path):
    dest = tmp_path / "t.bin"
    dest.write_bytes(b"good")
    url = server.add("t.bin", b"y" * 5000, truncate_to=10)
    with pytest.raises(DownloadError):
        download_file(url, dest, retries=0, force=True)
    assert dest.read_bytes() == b"good"


def test_slow_response_times_out_with_clear_error(server, tmp_path):
    url = server.add("slow.bin", b"z", delay=1.5)
    with pytest.raises(DownloadError, match="slow.bin"):
        download_file(url, tmp_path / "slow.bin", timeout=0.3, retries=1, backoff=0)
    assert not (tmp_path / "slow.bin").exists()


def test_slow_but_within_timeout_succeeds(server, tmp_path):
    url = server.add("slowok.bin", b"ok", delay=0.3)
    assert download_file(url, tmp_path / "s", timeout=5).read_bytes() == b"ok"


def test_server_errors_are_retried(server, tmp_path):
    url = server.add("flaky.bin", b"fine", fail_first=2)
    assert download_file(url, tmp_path / "f", retries=3, backoff=0).read_bytes() == b"fine"
    assert server.hits["/flaky.bin"] == 3


def test_validation_failure_is_final_and_keeps_nothing(server, tmp_path):
    url = server.add("bad.bin", b"not what we want")
    with pytest.raises(DownloadError, match="validation"):
        download_file(url, tmp_path / "bad.bin", validate=lambda p: False)
    assert list(tmp_path.iterdir()) == []


def test_download_many_collects_failures(server, tmp_path):
    items = [(server.add(f"f{i}", bytes([i]) * 10), tmp_path / f"f{i}") for i in range(6)]
    items.append((server.url("nope"), tmp_path / "nope"))
    report = download_many(items, workers=4, backoff=0)
    assert len(report.ok) == 6 and list(report.failed) == [server.url("nope")]
    with pytest.raises(DownloadError, match="1 download"):
        report.raise_if_failed()
