import time

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


def test_only_http_and_https_are_fetched(tmp_path):
    (tmp_path / "secret.txt").write_text("local file")
    for url in (f"file://{tmp_path}/secret.txt", "file:///dev/zero", "ftp://127.0.0.1/x", "data:,hello"):
        with pytest.raises(DownloadError, match="only https/http URLs are downloaded"):
            download_file(url, tmp_path / "out.bin")
    assert not (tmp_path / "out.bin").exists()


def test_redirects_are_followed_to_http_only(server, tmp_path):
    target = server.add("real.bin", b"payload")
    hop = server.add("hop", b"", redirect=target)
    assert download_file(hop, tmp_path / "a.bin").read_bytes() == b"payload"
    bad = server.add("to-ftp", b"", redirect="ftp://127.0.0.1/x")
    with pytest.raises(DownloadError, match="redirects to 'ftp://127.0.0.1/x'"):
        download_file(bad, tmp_path / "b.bin", retries=3, backoff=0)
    assert server.hits["/to-ftp"] == 1  # refused at once, never retried
    local = server.add("to-file", b"", redirect=f"file://{tmp_path}/a.bin")
    with pytest.raises(DownloadError, match="only http\\(s\\) redirects"):
        download_file(local, tmp_path / "c.bin")


def test_size_cap_refuses_announced_and_actual_oversize(server, tmp_path):
    url = server.add("big.bin", b"x" * 10_000)
    with pytest.raises(DownloadError, match="announces 10000 bytes, over the 1000-byte cap"):
        download_file(url, tmp_path / "big.bin", max_bytes=1000, retries=3, backoff=0)
    assert server.hits["/big.bin"] == 1 and not list(tmp_path.iterdir())
    assert download_file(url, tmp_path / "ok.bin", max_bytes=10_000).stat().st_size == 10_000


def test_a_trickling_server_is_cut_at_the_deadline(server, tmp_path):
    url = server.add("slow-body.bin", b"y" * 200, trickle=0.05)  # 10 s for the whole body
    start = time.monotonic()
    with pytest.raises(DownloadError, match="still incomplete at the deadline"):
        download_file(url, tmp_path / "s.bin", deadline=1.0, timeout=5, retries=3, backoff=0)
    assert time.monotonic() - start < 4 and not list(tmp_path.iterdir())


def test_a_silent_server_cannot_hold_an_attempt_past_the_deadline(server, tmp_path):
    url = server.add("stalled.bin", b"z", delay=6.0)  # answers only after 6 s
    start = time.monotonic()
    with pytest.raises(DownloadError, match="could not download"):
        download_file(url, tmp_path / "st.bin", deadline=1.5, timeout=10, retries=2, backoff=0)
    assert time.monotonic() - start < 3.5 and not list(tmp_path.iterdir())  # not the 10 s per-attempt timeout


def test_retry_after_is_honoured(server, tmp_path):
    url = server.add("busy.bin", b"done", fail_first=1, headers={"Retry-After": "1"})
    start = time.monotonic()
    assert download_file(url, tmp_path / "b.bin", retries=2, backoff=0).read_bytes() == b"done"
    assert time.monotonic() - start >= 0.95 and server.hits["/busy.bin"] == 2
    url = server.add("too-busy.bin", b"x", fail_first=5, headers={"Retry-After": "600"})
    with pytest.raises(DownloadError, match="deadline of 5 s leaves no time to retry"):
        download_file(url, tmp_path / "c.bin", retries=3, backoff=0, deadline=5)
    assert server.hits["/too-busy.bin"] == 1


def test_local_os_errors_that_retrying_cannot_mend_fail_at_once(server, tmp_path, monkeypatch):
    import errno

    from fgclip_utils import atomic_io
    from fgclip_utils.data import download

    url = server.add("f.bin", b"data")
    (tmp_path / "folder.bin").mkdir()  # a folder where the file should go
    with pytest.raises(DownloadError, match="folder.bin"):
        download_file(url, tmp_path / "folder.bin", retries=3, backoff=5)
    assert server.hits["/f.bin"] == 1  # fetched once; renaming onto a folder is not retried

    class FullDisk:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, block):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "open", FullDisk, raising=False)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="No space left on device"):
        download_file(url, tmp_path / "g.bin", retries=3, backoff=5)
    assert time.monotonic() - start < 2 and server.hits["/f.bin"] == 2  # no backoff, no second attempt
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(atomic_io.tempfile, "mkstemp", read_only)
    with pytest.raises(DownloadError, match="Read-only file system"):
        download_file(url, tmp_path / "h.bin", retries=3, backoff=5)
    assert server.hits["/f.bin"] == 2  # nothing was even requested


def test_ctrl_c_cancels_queued_downloads_at_once(server, tmp_path, request):
    import _thread
    import signal
    import threading

    # Python's own Ctrl-C handler, whatever this process inherited: a job started in the background by a
    # non-interactive shell ignores SIGINT, and interrupt_main() then does nothing
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, inherited))

    items = [(server.add(f"slow{i}.bin", b"z" * 100, delay=0.5), tmp_path / f"slow{i}.bin") for i in range(40)]
    threading.Timer(0.7, _thread.interrupt_main).start()
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        download_many(items, workers=2, backoff=0)
    assert time.monotonic() - start < 3  # not the 10 s the queue would take
    assert sum(server.hits.values()) <= 6  # queued downloads were cancelled, not started
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
