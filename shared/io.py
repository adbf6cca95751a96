"""Atomic file writes: nothing a user asked for is ever left half-written.

Every writer creates a temporary sibling of the target, fills it, then renames it over the
target with `os.replace`, which is atomic on POSIX filesystems. Temporaries are named
`.<target>.<pid>.<random>.tmp...`, so the next write of the same target removes the ones a
killed process left behind (`remove_stale_temporaries`), and never a live process's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

# .<name>.<pid>.<8 random chars>.tmp[suffix] (or .old: a target moved aside by atomic_dir)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.(?P<kind>tmp|old)")
_LEGACY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp")  # written before the pid was in the name
LEGACY_STALE_SECONDS = 3600.0


class NotWritableError(ValueError):
    """A folder the command must write to cannot be written; the message says which and why."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or a number we cannot check: leave it
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Removes the temporaries that killed processes left in `folder` (for target `name`, or
    for every target): those of a process that no longer runs and, for `name`, unnamed ones
    older than an hour (written before temporaries carried the pid). A target that a kill
    left moved aside (between atomic_dir's two renames) is put back. Returns what it removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        try:
            action = _stale_action(folder, entry, name)
            if action == "restore":  # the kill came between atomic_dir's two renames
                os.replace(entry, folder / _target_name(entry.name, name))
            elif action == "remove":
                _remove(entry)
                removed.append(entry)
        except FileNotFoundError:  # another process cleaned it up first
            continue
    return removed


def _target_name(entry: str, name: str | None) -> str:
    match = _TEMPORARY.match(entry)
    return match["name"] if match else name


def _stale_action(folder: Path, entry: Path, name: str | None) -> str:
    """"keep", "remove" or "restore" (an `.old` folder whose target is missing)."""
    match = _TEMPORARY.match(entry.name)
    if match and (name is None or match["name"] == name):
        if _alive(int(match["pid"])):
            return "keep"
        missing = not (folder / match["name"]).exists()
        return "restore" if match["kind"] == "old" and missing else "remove"
    if name is None or match:  # another target's temporary
        return "keep"
    if entry.name == f".{name}.old":  # written before temporaries carried the pid
        return "restore" if not (folder / name).exists() else "remove"
    legacy = _LEGACY.match(entry.name)
    if legacy and legacy["name"] == name:
        old_enough = time.time() - entry.lstat().st_mtime >= LEGACY_STALE_SECONDS
        return "remove" if old_enough else "keep"
    return "keep"


def check_writable(folder: str | os.PathLike, what: str = "the run folder") -> None:
    """Raises NotWritableError, one clear line, when `folder` (or, if it does not exist yet,
    the nearest existing folder above it, where it would be created) cannot be written.
    Creates nothing that stays."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    hint = "Pass a folder you can write to (--workdir / --out / --reports-dir)."
    if not existing.is_dir():
        raise NotWritableError(f"Cannot write {what} {folder}: {existing} is a file, not a "
                               f"folder. {hint}")
    try:
        fd, name = tempfile.mkstemp(prefix=".kts-write-check.", dir=existing)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise NotWritableError(f"Cannot write {what} {folder}: {reason} ({existing}). "
                               f"{hint}") from None


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    """A temporary file beside `path`, with the permissions a plain `open()` would give
    (mkstemp makes 0600 files, and os.replace would carry that onto the target)."""
    fd, name = tempfile.mkstemp(prefix=_prefix(path), suffix=f".tmp{suffix}", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically; creates parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj, indent: int = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = ""):
    """Yields a temporary file path to write (keeping `suffix`, e.g. ".keras" for savers that
    check the extension); on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tmp = _tmp_sibling(path, suffix)
    tmp.unlink()  # some savers refuse to overwrite
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_tree(folder: Path) -> None:
    """Flushes every file under `folder` to disk, so a renamed folder is complete after a
    power cut too (a kill alone cannot tear it)."""
    for root, _dirs, files in os.walk(folder):
        for file in files:
            fd = os.open(os.path.join(root, file), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextlib.contextmanager
def temporary_dir_beside(path: str | os.PathLike):
    """Yields a scratch folder beside `path` (not in /tmp, so a kill leaves nothing outside the
    run folder); removed afterwards, or by the next write of `path` if the process is killed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    scratch = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yields a temporary folder to fill; on success it replaces the folder `path` whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path), suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())
    old = tmp.with_name(tmp.name[:-len(".tmp")] + ".old")
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            os.replace(path, old)
        try:
            os.replace(tmp, path)  # a kill just before this: the next write puts `old` back
        except BaseException:
            if old.exists() and not path.exists():
                os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """An exclusive lock between processes, held for the block, on the file `path` (created
    with its folder when missing; the lock file itself stays, empty)."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
