"""HTTP(S) downloads that never leave a half-written file, never wait forever and never fill a disk.

A file is moved into place only once it is complete (its size matches ``Content-Length``) and, when a
``validate`` callable is given, once that callable accepts it; a cached file that fails validation is fetched
again, one that passes is never downloaded twice. Every download is bounded:

- only ``http`` and ``https`` URLs are fetched, and redirects are followed only to ``http``/``https``;
- ``max_bytes`` caps the size (an announced ``Content-Length`` over it fails before any byte is read);
- ``deadline`` caps the total seconds one file may take, all attempts and waits included, so a server that
  trickles bytes cannot hold a worker forever (``timeout`` bounds each connect and read, and never exceeds the
  time the deadline leaves);
- time-outs, dropped connections, truncated bodies and 5xx/429 answers are retried with exponential backoff,
  or after the server's ``Retry-After`` when it sends one; a 4xx answer, a refused scheme, a size over the
  cap and an OS error that retrying cannot mend (read-only or full disk, permission denied, a folder where
  the file should go) fail at once;
- :func:`download_many` stops promptly on Ctrl-C: queued downloads are cancelled and running ones end at their
  next block.

``$FGCLIP_MIRROR`` (a base URL) sends every request to a mirror laid out as ``<mirror>/<host>/<path>``; the
offline rehearsal of the ``full`` profile serves the upstream layout from 127.0.0.1 this way.
"""
from __future__ import annotations

import email.utils
import errno
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic_io import atomic_path
from .assets import ALLOWED_SCHEMES, Asset, asset, file_hash

Validator = Callable[[Path], bool]
USER_AGENT = "fgclip-study/0.1 (research reproduction)"
MIRROR_ENV = "FGCLIP_MIRROR"
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB unless the caller knows better
DEFAULT_DEADLINE = 1800.0  # seconds for one file, all attempts included
MAX_RETRY_AFTER = 120.0  # longest server-requested wait honoured
_BLOCK = 1 << 16
# OS errors that another attempt cannot mend: fail at once
_PERMANENT_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                     errno.ENAMETOOLONG, getattr(errno, "EDQUOT", errno.ENOSPC)}


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL and the destination."""


class DownloadCancelled(DownloadError):
    """The download was stopped from outside (Ctrl-C in :func:`download_many`)."""


class _Retryable(Exception):
    """A failure another attempt may mend; ``wait`` is the server's Retry-After, if any."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


def mirrored(url: str) -> str:
    """``url`` as ``$FGCLIP_MIRROR`` serves it (``<mirror>/<host>/<path>``), or ``url`` itself without a mirror."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    parts = urllib.parse.urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{mirror.rstrip('/')}/{parts.netloc}{path}"


def _check_scheme(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise DownloadError(f"refusing to fetch {url!r}: only {'/'.join(ALLOWED_SCHEMES)} URLs are downloaded")


class _SafeRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) only (urllib alone would also follow one to ftp)."""

    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise DownloadError(f"{req.full_url} redirects to {newurl!r}: only http(s) redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SafeRedirects)


def _retry_after(headers) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _fetch_once(url: str, tmp: Path, timeout: float, max_bytes: int | None, give_up_at: float,
                cancel: threading.Event | None) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    left = give_up_at - time.monotonic()
    if left <= 0:
        raise DownloadError("the deadline passed before this attempt")
    try:  # an attempt never waits past the deadline: its connect and read timeout is at most the time left
        response = _OPENER.open(request, timeout=min(timeout, left))
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise _Retryable(f"HTTP {exc.code}", _retry_after(exc.headers)) from exc
        if 300 <= exc.code < 400:  # urllib refused the redirect itself (e.g. to a local file)
            raise DownloadError(f"refused an HTTP {exc.code} redirect: only http(s) redirects are followed "
                                f"({exc.reason})") from exc
        raise DownloadError(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        raise _Retryable(repr(getattr(exc, "reason", exc))) from exc
    with response, open(tmp, "wb") as out:
        expected = response.headers.get("Content-Length")
        expected = int(expected) if expected and expected.isdigit() else None
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise DownloadError(f"announces {expected} bytes, over the {max_bytes}-byte cap for this file")
        received = 0
        while True:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelled("cancelled")
            if time.monotonic() > give_up_at:
                raise DownloadError(f"still incomplete at the deadline ({received} bytes received)")
            try:
                block = response.read1(_BLOCK)  # returns what has arrived: a trickling server cannot stall it
            except (http.client.HTTPException, TimeoutError, ConnectionError) as exc:
                raise _Retryable(f"connection broke after {received} bytes ({exc!r})") from exc
            if not block:
                break
            received += len(block)
            if max_bytes is not None and received > max_bytes:
                raise DownloadError(f"exceeds the {max_bytes}-byte cap for this file")
            out.write(block)
    if expected is not None and received != expected:
        raise _Retryable(f"received {received} of {expected} bytes")


def download_file(url: str, dest: str | Path, *, validate: Validator | None = None, retries: int = 3,
                  timeout: float = 30.0, backoff: float = 0.5, force: bool = False,
                  max_bytes: int | None = DEFAULT_MAX_BYTES, deadline: float = DEFAULT_DEADLINE,
                  cancel: threading.Event | None = None) -> Path:
    """Fetch ``url`` into ``dest`` unless a valid copy is already there; return ``dest``.

    Raises :class:`DownloadError` naming the URL and ``dest``; ``dest`` is untouched on failure and no
    temporary file is left behind. See the module docstring for the bounds.
    """
    dest = Path(dest)
    if not force and _still_valid(dest, validate):
        return dest
    _check_scheme(url)
    source = mirrored(url)
    _check_scheme(source)
    give_up_at = time.monotonic() + deadline
    reason = "no attempt made"
    for attempt in range(retries + 1):
        try:
            with atomic_path(dest) as tmp:
                _fetch_once(source, tmp, timeout, max_bytes, give_up_at, cancel)
                if validate is not None and not validate(tmp):
                    raise DownloadError("the downloaded file does not pass validation")
            return dest
        except DownloadError as exc:
            raise type(exc)(f"could not download {url} to {dest}: {exc}") from exc
        except _Retryable as exc:
            reason = str(exc)
            wait = min(exc.wait, MAX_RETRY_AFTER) if exc.wait is not None else backoff * 2 ** attempt
        except OSError as exc:  # our side: the cache folder or the disk
            if exc.errno in _PERMANENT_ERRNOS:
                raise DownloadError(f"could not download {url} to {dest}: {exc}") from exc
            reason, wait = repr(exc), backoff * 2 ** attempt
        if attempt == retries:
            break
        if time.monotonic() + wait > give_up_at:
            reason += f"; the deadline of {deadline:.0f} s leaves no time to retry"
            break
        if cancel is None:
            time.sleep(wait)
        elif cancel.wait(wait):
            raise DownloadCancelled(f"could not download {url} to {dest}: cancelled")
    raise DownloadError(f"could not download {url} to {dest}: {reason}")


def _still_valid(dest: Path, validate: Validator | None) -> bool:
    """Whether a cached ``dest`` can be used as it is (a validator's DownloadError means: fetch it again)."""
    if not dest.is_file():
        return False
    try:
        return validate is None or bool(validate(dest))
    except DownloadError:
        return False


def fetch_asset(entry: Asset | str, *, folder: str | os.PathLike | None = None, validate: Validator | None = None,
                **kwargs) -> Path:
    """The registered asset ``entry`` (an :class:`~fgclip_utils.data.assets.Asset` or its key) in the cache,
    downloaded once and verified by its hash on download and on every reuse.

    A file whose hash differs is refused with an error naming the asset, the file, the expected and the actual
    hash, and is not kept. An asset with no published hash gets its sha256 recorded on first download.
    ``validate`` checks what the hash cannot (e.g. that a split file parses); ``folder`` replaces the asset's
    cache folder.
    """
    entry = asset(entry) if isinstance(entry, str) else entry
    dest = entry.local_path(folder)

    def check(path: Path) -> bool:
        expected = entry.expected_hash(dest)  # a recorded hash lives beside the destination
        if expected is not None:
            got = file_hash(path, expected.split(":", 1)[0])
            if got != expected:
                raise DownloadError(f"{entry.key}: the downloaded {dest.name} has {got}, expected {expected}; "
                                    "not kept")
        return validate is None or validate(path)

    kwargs.setdefault("max_bytes", entry.max_bytes)
    kwargs.setdefault("deadline", entry.deadline)
    download_file(entry.url, dest, validate=check, **kwargs)
    if entry.expected_hash(dest) is None:
        entry.record_hash(dest)
    return dest


@dataclass
class DownloadReport:
    """What :func:`download_many` did: paths that are in place and the failures by URL."""

    ok: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        if self.failed:
            lines = "\n".join(f"  {u}: {e}" for u, e in list(self.failed.items())[:10])
            raise DownloadError(f"{len(self.failed)} download(s) failed:\n{lines}")


def download_many(items: Iterable[tuple], *, validate: Validator | None = None, workers: int = 8,
                  desc: str = "downloading", **kwargs) -> DownloadReport:
    """Download ``(url, dest)`` or ``(url, dest, validate)`` items in parallel threads with one progress bar
    (an item's own validator replaces ``validate``); failures are collected per URL, never raised. Ctrl-C
    cancels what is queued, stops what runs at its next block, and is re-raised."""
    items = [(*item, validate) if len(item) == 2 else tuple(item) for item in items]
    report = DownloadReport()
    if not items:
        return report
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        futures = {pool.submit(download_file, u, d, validate=v, cancel=cancel, **kwargs): u for u, d, v in items}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="file"):
            try:
                report.ok.append(fut.result())
            except DownloadError as exc:
                report.failed[futures[fut]] = str(exc)
    except BaseException:
        cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return report
