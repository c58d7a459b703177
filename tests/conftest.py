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
            delay: float = 0.0, fail_first: int = 0) -> str:
        """Serve ``body`` at ``path``; ``truncate_to`` announces the full length but sends fewer bytes;
        ``delay`` sleeps before answering; ``fail_first`` answers 503 to that many first requests."""
        self.routes["/" + path.lstrip("/")] = dict(body=body, status=status, truncate_to=truncate_to,
                                                   delay=delay, fail_first=fail_first)
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
                if server.hits[self.path] <= route["fail_first"]:
                    self.send_error(503, "try later")
                    return
                if route["status"] != 200:
                    self.send_error(route["status"])
                    return
                body = route["body"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
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
