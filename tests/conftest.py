"""Shared fixtures: an isolated cache, a real HTTP server on 127.0.0.1, a small synthetic benchmark."""
from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

# benchmarks/ holds the timing scripts and the modules only they use (throughput.py); tests import those too
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

# Notebooks executed by nbval inherit this environment: keep their caches and figures out of the user's.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="fgclip-tests-"))
os.environ.setdefault("FGCLIP_CACHE", str(_SESSION_DIR / "cache"))
os.environ.setdefault("FGCLIP_FIGURES", str(_SESSION_DIR / "figures"))
os.environ.setdefault("FGCLIP_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
# nothing in a test or a notebook under test ever tries a host outside this machine (hf-hub names, detectors)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("FGCLIP_CACHE", str(path))
    return path


class FixtureServer:
    """Serves registered byte payloads with scripted misbehaviour, and counts requests per path."""

    def __init__(self):
        self.routes: dict[str, dict] = {}
        self.hits: Counter = Counter()
        handler = self._handler()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def add(self, path: str, body: bytes, *, status: int = 200, truncate_to: int | None = None,
            delay: float = 0.0, fail_first: int = 0, trickle: float = 0.0, redirect: str | None = None,
            headers: dict | None = None) -> str:
        """Serve ``body`` at ``path``; ``truncate_to`` announces the full length but sends fewer bytes;
        ``delay`` sleeps before answering; ``fail_first`` answers 503 to that many first requests (with
        ``headers``, e.g. Retry-After); ``trickle`` sleeps that long between bytes (bounded by the test's own
        deadline: it stops once the client hangs up); ``redirect`` answers 302 to that location."""
        self.routes["/" + path.lstrip("/")] = dict(body=body, status=status, truncate_to=truncate_to, delay=delay,
                                                   fail_first=fail_first, trickle=trickle, redirect=redirect,
                                                   headers=headers or {})
        return self.url(path)

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404, "not found")
                    return
                if route["delay"]:
                    time.sleep(route["delay"])
                if route["redirect"]:
                    self.send_response(302)
                    self.send_header("Location", route["redirect"])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.hits[self.path] <= route["fail_first"]:
                    self.send_response(503)
                    for name, value in route["headers"].items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if route["status"] != 200:
                    self.send_error(route["status"])
                    return
                body = route["body"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if route["trickle"]:
                        for i in range(len(body)):  # ends when the client hangs up (BrokenPipe)
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                            time.sleep(route["trickle"])
                    else:
                        self.wfile.write(body if route["truncate_to"] is None else body[:route["truncate_to"]])
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if route["truncate_to"] is not None:
                    self.close_connection = True

        return Handler

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FixtureServer()
    yield srv
    srv.close()


class Upstream:
    """A local server standing in for every upstream host through ``$FGCLIP_MIRROR`` (``/<host>/<path>``), and a
    ``$FGCLIP_ASSET_HASHES`` file naming the hashes of the files it serves (they are the tests' own, not the
    real ones)."""

    def __init__(self, server: FixtureServer, hashes_file: Path):
        self.server, self.hashes_file, self.hashes = server, hashes_file, {}
        hashes_file.write_text("{}")

    def path_of(self, url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        return f"{parts.netloc}{parts.path}"

    def serve(self, url: str, body: bytes, **kwargs) -> str:
        """Serve ``body`` where ``url`` is mirrored; return the path it is served at."""
        path = self.path_of(url)
        self.server.add(path, body, **kwargs)
        return path

    def serve_asset(self, key: str, body: bytes, *, record_hash: bool = True, **kwargs) -> str:
        """Serve ``body`` as registered asset ``key``; its hash (in the asset's algorithm) becomes the expected one."""
        import hashlib
        import json

        from fgclip_utils.data.assets import ASSETS

        entry = ASSETS[key]
        if record_hash:
            algo = entry.hash.split(":", 1)[0] if entry.hash else None
            if algo == "gitblob":
                self.hashes[key] = "gitblob:" + hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest()
            elif algo == "sha256":
                self.hashes[key] = "sha256:" + hashlib.sha256(body).hexdigest()
            self.hashes_file.write_text(json.dumps(self.hashes))
        return self.serve(entry.url, body, **kwargs)

    def hits(self, url_or_key: str) -> int:
        from fgclip_utils.data.assets import ASSETS

        url = ASSETS[url_or_key].url if url_or_key in ASSETS else url_or_key
        return self.server.hits["/" + self.path_of(url)]


@pytest.fixture
def upstream(server, tmp_path, monkeypatch):
    up = Upstream(server, tmp_path / "asset-hashes.json")
    monkeypatch.setenv("FGCLIP_MIRROR", server.base)
    monkeypatch.setenv("FGCLIP_ASSET_HASHES", str(up.hashes_file))
    return up


@pytest.fixture(scope="session")
def synth_bench(tmp_path_factory):
    """A small synthetic benchmark (shared, read-only): split name -> JSON path, plus the image root."""
    from fgclip_utils.data import synthetic as synth

    out = tmp_path_factory.mktemp("synth")
    return synth.make_benchmark(out, n_objects=24, seed=3), synth.image_root(out)


@pytest.fixture(scope="session")
def tiny_clip():
    from fgclip_utils.extraction.clip_models import load_clip

    return load_clip("fgclip-tiny", device="cpu", seed=0)


@contextlib.contextmanager
def row_file_held_by_another_process(path, rows: int, dim: int):
    """Open ``RowFile(path, rows, dim)`` in a child process (which holds its lock) until the block ends."""
    code = ("import sys; from fgclip_utils.extraction.row_file import RowFile; "
            f"f = RowFile({str(path)!r}, {rows}, {dim}); print('open', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "open"
        yield
    finally:
        child.stdin.close()
        child.wait(timeout=30)
