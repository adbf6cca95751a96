"""Checksummed downloads that never leave a half-file where a loader would read it.

    download(url, target, size=1432511, sha256="...")   # streams, checks, then os.replace
    extract_archive(archive, dest)                        # into a temp folder, then renamed

A download streams into `.<name>.part` beside the target. An interrupted one (connection
closed, process killed) leaves only that hidden file, and the next call resumes it with an
HTTP Range request when the server honours one, else starts over. Only a file whose size
and sha256 match is moved into place (os.replace, atomic). stdlib urllib only.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from shared.io import atomic_dir

CHUNK = 1 << 16
USER_AGENT = "keras-task-suite-data/1"


class DownloadError(RuntimeError):
    """The file could not be fetched; the message names the URL and how to place it by hand."""


class ChecksumError(ValueError):
    """The bytes received are not the registry's: the message names file, expected and received."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def partial_path(target: Path) -> Path:
    """Where an unfinished download of `target` lives (hidden, beside it)."""
    return target.parent / f".{target.name}.part"


class Progress:
    """A one-line bar on stderr, redrawn at most 10 times a second; silent when not a tty."""

    def __init__(self, label: str, total: int, done: int, enabled: bool | None):
        self.label, self.total, self.done = label, max(total, 1), done
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            fraction = min(self.done / self.total, 1.0)
            bar = "#" * int(fraction * 30)
            sys.stderr.write(f"\r  {self.label[-40:]:<40} [{bar:<30}] {fraction:6.1%} "
                             f"{self.done / 1e6:7.2f}/{self.total / 1e6:.2f} MB")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _stream(url: str, partial: Path, size: int, progress: bool | None, timeout: float, label: str) -> None:
    """Appends the rest of `url` to `partial` (Range from its current length), or rewrites it
    whole when the server ignores the Range. Raises OSError/URLError when cut short."""
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 - registry URLs
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # our partial is not a prefix the server knows: start over
            partial.unlink(missing_ok=True)
            return _stream(url, partial, size, progress, timeout, label)
        raise
    with response:
        status = getattr(response, "status", None)
        content_range = response.headers.get("Content-Range", "") if response.headers else ""
        resumed = have and status == 206 and content_range.startswith(f"bytes {have}-")
        if not resumed:
            have = 0
        bar = Progress(label, size, have, progress)
        written = have
        partial.parent.mkdir(parents=True, exist_ok=True)  # a failed neighbour may have removed it
        try:
            with open(partial, "ab" if resumed else "wb") as f:
                while block := response.read(CHUNK):
                    f.write(block)
                    written += len(block)
                    bar.update(len(block))
                    if written > size:
                        break  # more than the registry's size: the checksum step will say so
                f.flush()
                os.fsync(f.fileno())
        finally:
            bar.close()
    if written < size:
        raise ConnectionError(f"connection closed after {written:,} of {size:,} bytes")


def download(url: str, target: str | os.PathLike, size: int, sha256: str, *, progress: bool | None = None,
             retries: int = 3, timeout: float = 60.0, backoff: float = 1.0, by_hand: str = "") -> Path:
    """Fetches `url` into `target` (size and sha256 checked first); returns `target`.

    Raises ChecksumError (nothing left in place, the partial file removed) or DownloadError
    (the URL, the cause, and where to put the file by hand; the partial file kept to resume).
    """
    target = Path(target)
    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    try:
        return _download(url, target, size, sha256, progress, retries, timeout, backoff, by_hand)
    except BaseException:
        if not partial_path(target).exists():  # nothing to resume: leave no empty folders behind
            for folder in created:  # deepest first; stops at one another download is filling
                try:
                    folder.rmdir()
                except OSError:
                    break
        raise


def _download(url: str, target: Path, size: int, sha256: str, progress: bool | None, retries: int,
              timeout: float, backoff: float, by_hand: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    last_error: BaseException | None = None
    restarted = False
    mismatch: ChecksumError | None = None
    for attempt in range(retries + 1):
        if attempt and last_error is not None:
            time.sleep(backoff * attempt)
        have = partial.stat().st_size if partial.exists() else 0
        if have > size:
            partial.unlink()
            have = 0
        if have < size:
            try:
                _stream(url, partial, size, progress, timeout, target.name)
            except (OSError, urllib.error.URLError, ConnectionError, http.client.HTTPException) as err:
                last_error = err
                if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500 and err.code not in (408, 429):
                    break  # not there: asking again will not help
                continue
            last_error = None
        received_size = partial.stat().st_size
        received = sha256_file(partial)
        if received_size == size and received == sha256:
            os.replace(partial, target)
            return target
        partial.unlink(missing_ok=True)
        mismatch = ChecksumError(
            f"Checksum mismatch for {target}: expected sha256 {sha256} ({size:,} bytes), received "
            f"{received} ({received_size:,} bytes) from {url}. Nothing was put in place.")
        if have and not restarted:  # a resumed file may have started from stale bytes: once more
            restarted = True
            continue
        raise mismatch
    if last_error is None and mismatch is not None:
        raise mismatch
    hint = by_hand or f"download it by other means and save it as {target}"
    raise DownloadError(f"Could not download {url}: {last_error}. To place the file by hand, {hint} "
                        f"(expected {size:,} bytes, sha256 {sha256}).")


def _safe_member(name: str, archive: Path) -> PurePosixPath:
    """The member path if it stays inside the target folder; ValueError otherwise."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"{archive}: refusing member {name!r}, whose path escapes the target folder.")
    return path


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpacks a .zip or .tar[.gz|.bz2|.xz] into a temporary folder beside `dest`, then renames
    it to `dest` (replacing it whole). Members with absolute paths, `..`, or (tar) links and
    devices are refused before anything is written."""
    archive, dest = Path(archive), Path(dest)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for member in members:
                _safe_member(member.filename, archive)
            with atomic_dir(dest) as tmp:
                for member in members:
                    out = tmp / _safe_member(member.filename, archive)
                    if member.is_dir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        return dest
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for member in members:
                _safe_member(member.name, archive)
                if not (member.isfile() or member.isdir()):
                    raise ValueError(f"{archive}: refusing member {member.name!r} (links and devices "
                                     "are not unpacked).")
            with atomic_dir(dest) as tmp:
                for member in members:
                    out = tmp / _safe_member(member.name, archive)
                    if member.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                        continue
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
        return dest
    raise ValueError(f"{archive}: not a zip or tar archive.")
