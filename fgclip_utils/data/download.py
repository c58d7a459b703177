"""HTTP downloads with retries, atomic writes, validation and a parallel progress bar.

A file is only ever moved into place once it is complete (its size matches ``Content-Length``) and, when a
``validate`` callable is given, once that callable accepts it. A cached file that fails validation is
fetched again; one that passes is never downloaded twice.
"""
from __future__ import annotations

import http.client
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..atomic_io import atomic_path

Validator = Callable[[Path], bool]
USER_AGENT = "fgclip-study/0.1 (+research reproduction)"


class DownloadError(RuntimeError):
    """A file could not be fetched; the message names the URL and the destination."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 429 or exc.code >= 500
    return isinstance(exc, (urllib.error.URLError, http.client.HTTPException, OSError, _Incomplete))


class _Incomplete(Exception):
    pass


def _fetch_once(url: str, tmp: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as out:
        expected = response.headers.get("Content-Length")
        shutil.copyfileobj(response, out, length=1 << 16)
    if expected is not None and tmp.stat().st_size != int(expected):
        raise _Incomplete(f"received {tmp.stat().st_size} of {expected} bytes")


def download_file(
    url: str,
    dest: str | Path,
    *,
    validate: Validator | None = None,
    retries: int = 3,
    timeout: float = 30.0,
    backoff: float = 0.5,
    force: bool = False,
) -> Path:
    """Fetch ``url`` into ``dest`` unless a valid copy is already there; return ``dest``.

    Retries time-outs, connection errors, truncated bodies and 5xx/429 answers with exponential backoff;
    a 4xx answer fails at once. Raises :class:`DownloadError`; ``dest`` is untouched on failure.
    """
    dest = Path(dest)
    if not force and dest.exists() and (validate is None or validate(dest)):
        return dest
    last: BaseException | None = None
    for attempt in range(retries + 1):
        try:
            with atomic_path(dest) as tmp:
                _fetch_once(url, tmp, timeout)
                if validate is not None and not validate(tmp):
                    raise DownloadError(f"{url}: downloaded file does not pass validation (not kept as {dest})")
            return dest
        except DownloadError:
            raise
        except Exception as exc:
            last = exc
            if not _retryable(exc) or attempt == retries:
                break
            time.sleep(backoff * 2**attempt)
    reason = f"HTTP {last.code}" if isinstance(last, urllib.error.HTTPError) else repr(last)
    raise DownloadError(f"could not download {url} to {dest}: {reason}") from last


@dataclass
class DownloadReport:
    """What :func:`download_many` did: paths that are in place and the failures by URL."""

    ok: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def raise_if_failed(self) -> None:
        if self.failed:
            lines = "\n".join(f"  {u}: {e}" for u, e in list(self.failed.items())[:10])
            raise DownloadError(f"{len(self.failed)} download(s) failed:\n{lines}")


def download_many(
    items: Iterable[tuple[str, str | Path]],
    *,
    validate: Validator | None = None,
    workers: int = 8,
    desc: str = "downloading",
    **kwargs,
) -> DownloadReport:
    """Download ``(url, dest)`` pairs in parallel threads with one progress bar; never raises per item."""
    items = list(items)
    report = DownloadReport()
    if not items:
        return report
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(download_file, u, d, validate=validate, **kwargs): (u, d) for u, d in items}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="file"):
            url, _ = futures[fut]
            try:
                report.ok.append(fut.result())
            except DownloadError as exc:
                report.failed[url] = str(exc)
    return report
