"""`kts data`: the registry, checksummed downloads and the data root, over a local
http.server on 127.0.0.1 (no network)."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import shutil
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from pipelines import registry
from pipelines.download import ChecksumError, DownloadError, download, extract_archive, partial_path
from pipelines.fetch import fetch, status, verify
from pipelines.registry import Dataset, FileEntry
from shared import runtime
from shared.cli import main

KIT = runtime.default_data_root()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves server.root; honours Range when server.ranges; the first request of a path in
    server.cut gets only that many bytes before the connection is closed."""

    def do_GET(self):  # noqa: N802 - http.server's name
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        wanted = self.headers.get("Range")
        if wanted and server.ranges:
            start = int(wanted.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut.pop(self.path, None)
        self.wfile.write(data[start:cut] if cut is not None else data[start:])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.root, httpd.ranges, httpd.cut, httpd.requests = root, True, {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _serve(server, name: str, data: bytes) -> tuple[str, int, str]:
    (server.root / name).parent.mkdir(parents=True, exist_ok=True)
    (server.root / name).write_bytes(data)
    return f"{server.url}/{name}", len(data), hashlib.sha256(data).hexdigest()


def _tiny_dataset(server, files: dict[str, bytes], unpack: str = "") -> Dataset:
    entries = []
    for path, data in files.items():
        url, size, digest = _serve(server, f"tiny/{path}", data)
        entries.append(FileEntry(path, size, digest, url, unpack=unpack))
    return Dataset("tiny", "tiny", "a tiny test dataset", "CC0", "none", "tests", "here", files=tuple(entries))


PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes


def test_fetch_writes_checked_files_and_a_second_fetch_downloads_nothing(server, tmp_path):
    dataset = _tiny_dataset(server, {"a/one.bin": PAYLOAD, "two.txt": b"hello\n"})
    root = tmp_path / "root"
    assert not status(dataset, root).present
    written = fetch(dataset, root, progress=False, log=lambda _: None)
    assert sorted(p.relative_to(root).as_posix() for p in written) == ["tiny/a/one.bin", "tiny/two.txt"]
    assert (root / "tiny/a/one.bin").read_bytes() == PAYLOAD
    assert status(dataset, root).present and verify(dataset, root)["problems"] == []
    server.requests.clear()
    assert fetch(dataset, root, progress=False, log=lambda _: None) == []
    assert server.requests == []


def test_corrupted_byte_fails_the_checksum_and_leaves_nothing(server, tmp_path):
    url, size, digest = _serve(server, "f.bin", PAYLOAD)
    corrupted = bytearray(PAYLOAD)
    corrupted[5000] ^= 0xFF
    (server.root / "f.bin").write_bytes(bytes(corrupted))
    target = tmp_path / "out" / "f.bin"
    with pytest.raises(ChecksumError) as err:
        download(url, target, size, digest, progress=False, backoff=0)
    message = str(err.value)
    assert str(target) in message and digest in message
    assert hashlib.sha256(bytes(corrupted)).hexdigest() in message
    assert not target.exists() and not partial_path(target).exists()
    assert not target.parent.exists()  # the folder the download made is gone too


def test_download_cut_half_way_resumes_with_a_range_request(server, tmp_path):
    url, size, digest = _serve(server, "big.bin", PAYLOAD)
    target = tmp_path / "big.bin"
    server.cut["/big.bin"] = size // 2
    with pytest.raises(DownloadError, match="big.bin"):  # no retry: the half-file stays hidden
        download(url, target, size, digest, progress=False, retries=0)
    assert not target.exists() and partial_path(target).stat().st_size == size // 2
    download(url, target, size, digest, progress=False, retries=0)  # run again
    assert target.read_bytes() == PAYLOAD and not partial_path(target).exists()
    assert server.requests[-1] == ("/big.bin", f"bytes={size // 2}-")


def test_cut_download_retries_by_itself_and_restarts_without_range_support(server, tmp_path):
    url, size, digest = _serve(server, "big.bin", PAYLOAD)
    server.ranges = False
    server.cut["/big.bin"] = 1000
    target = tmp_path / "big.bin"
    download(url, target, size, digest, progress=False, backoff=0)
    assert target.read_bytes() == PAYLOAD and len(server.requests) == 2


def test_stale_partial_with_wrong_bytes_is_restarted(server, tmp_path):
    url, size, digest = _serve(server, "big.bin", PAYLOAD)
    target = tmp_path / "big.bin"
    partial_path(target).write_bytes(b"\0" * 3000)  # left by some earlier, different download
    download(url, target, size, digest, progress=False, backoff=0)
    assert target.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=3000-", None]


def test_failed_download_names_the_url_and_where_to_put_the_file(server, tmp_path):
    dataset = _tiny_dataset(server, {"gone.bin": b"x"})
    (server.root / "tiny/gone.bin").unlink()
    with pytest.raises(DownloadError) as err:
        fetch(dataset, tmp_path / "root", progress=False, log=lambda _: None, backoff=0)
    message = str(err.value)
    assert f"{server.url}/tiny/gone.bin" in message and "by hand" in message
    assert str(tmp_path / "root" / "tiny" / "gone.bin") in message and "kts data verify tiny" in message
    assert len(server.requests) == 1  # a 404 is not retried


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_archive_is_unpacked_into_place_and_not_kept(server, tmp_path):
    dataset = _tiny_dataset(server, {"pack.zip": _zip({"inner/a.txt": b"a", "b.txt": b"b"})}, unpack="unpacked")
    root = tmp_path / "root"
    fetch(dataset, root, progress=False, log=lambda _: None)
    assert (root / "tiny/unpacked/inner/a.txt").read_bytes() == b"a"
    assert sorted(p.name for p in (root / "tiny").iterdir()) == ["unpacked"]
    assert status(dataset, root).present


@pytest.mark.parametrize("evil", ["../escape.txt", "/abs/escape.txt", "ok/../../escape.txt"])
def test_archive_member_escaping_the_target_is_refused(tmp_path, evil):
    archive = tmp_path / "evil.zip"
    archive.write_bytes(_zip({"fine.txt": b"ok", evil: b"gotcha"}))
    dest = tmp_path / "out" / "dest"
    with pytest.raises(ValueError, match="escapes the target"):
        extract_archive(archive, dest)
    assert not dest.exists() and not (tmp_path / "escape.txt").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_tar_with_a_link_or_parent_path_is_refused(tmp_path):
    for name, kind in (("../up.txt", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        archive = tmp_path / "evil.tar"
        with tarfile.open(archive, "w") as tf:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tf.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        with pytest.raises(ValueError, match="refusing"):
            extract_archive(archive, tmp_path / "dest")
        assert not (tmp_path / "dest").exists()


@pytest.mark.skipif(not (KIT / "olivetti-faces" / "olivettifaces.mat").is_file(), reason="no data kit")
def test_kts_data_fetch_from_a_mirror_then_the_loader_reads_it(server, tmp_path, capsys):
    from pipelines.datasets.olivetti import load_olivetti_arrays

    shutil.copytree(KIT / "olivetti-faces", server.root / "olivetti-faces")
    root = tmp_path / "root"
    assert main(["data", "fetch", "olivetti", "--data-root", str(root), "--mirror", server.url, "--quiet"]) == 0
    images, labels = load_olivetti_arrays(root)
    assert images.shape == (400, 64, 64, 1) and labels[-1] == 39
    assert main(["data", "verify", "olivetti", "--data-root", str(root)]) == 0
    main(["data", "list", "--data-root", str(root)])
    listing = capsys.readouterr().out
    assert "olivetti" in listing and "present" in listing and "missing" in listing and "MIT" in listing
    with open(root / "olivetti-faces/olivettifaces.mat", "r+b") as f:  # one byte changed
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    assert main(["data", "verify", "olivetti", "--data-root", str(root)]) == 1
    assert "olivettifaces.mat: expected sha256" in capsys.readouterr().err


def test_word_eval_is_copied_from_the_gensim_package_without_a_download(tmp_path):
    dataset = registry.get("word-eval")
    fetch(dataset, tmp_path, progress=False, log=lambda _: None)
    assert verify(dataset, tmp_path) == {"checked": 4, "missing": [], "problems": []}


def test_loaders_name_the_fetch_command_when_data_is_missing(tmp_path):
    from pipelines.datasets.bccd import bccd_root
    from pipelines.datasets.olivetti import load_olivetti_arrays
    from pipelines.datasets.parallel import load_multi30k

    for load, name in ((bccd_root, "bccd"), (load_olivetti_arrays, "olivetti"), (load_multi30k, "multi30k")):
        with pytest.raises(FileNotFoundError, match=f"kts data fetch {name}"):
            load(tmp_path)
    with pytest.raises(FileNotFoundError, match="kts data fetch bccd"):
        runtime.require_path(tmp_path / "nothing", "BCCD", dataset="bccd")


def test_data_root_ends_at_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert runtime.user_cache_dir() == tmp_path / "cache" / "kts"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert runtime.user_cache_dir() == Path.home() / ".cache" / "kts"
    monkeypatch.setenv("KTS_DATA", str(tmp_path / "mine"))
    assert runtime.default_data_root() == tmp_path / "mine"
    assert runtime.resolve_data_root(tmp_path / "flag") == tmp_path / "flag"


def test_every_registry_entry_has_files_licence_and_pinned_urls():
    for dataset in registry.datasets().values():
        assert dataset.files and dataset.license and dataset.citation and dataset.used_by
        for entry in dataset.files:
            assert entry.url.startswith("https://raw.githubusercontent.com/") and len(entry.sha256) == 64
            assert "/gh-pages/" not in entry.url and "/master/" not in entry.url
    assert {d.name for d in registry.for_data_source("bccd_cells")} == {"bccd"}
    assert registry.for_data_source("digits") == []


@pytest.mark.skipif(not (KIT / "bccd").is_dir(), reason="no data kit")
def test_the_kit_matches_the_registry_byte_for_byte():
    from pipelines.registry.datasets import MANIFEST
    from pipelines.registry.make_manifest import manifest_rows

    assert json.loads(MANIFEST.read_text()) == manifest_rows(KIT)  # same files, sizes and sha256
    result = verify(registry.get("olivetti"), KIT)
    assert result == {"checked": 1, "missing": [], "problems": []}


def test_many_files_are_fetched_in_parallel_and_all_checked(server, tmp_path):
    dataset = _tiny_dataset(server, {f"d{i % 3}/f{i}.bin": PAYLOAD[i:] for i in range(40)})
    written = fetch(dataset, tmp_path, progress=False, log=lambda _: None)
    assert len(written) == 40 and verify(dataset, tmp_path)["problems"] == []
    assert (tmp_path / "tiny/d1/f7.bin").read_bytes() == PAYLOAD[7:]


def _demo(tmp_path, *extra):
    return main(["demo", "--preset", "smoke", "--workdir", str(tmp_path / "runs"),
                 "--reports-dir", str(tmp_path / "reports"), "--data-root", str(tmp_path / "empty"), *extra])


def test_demo_with_no_data_runs_what_it_can_and_reports_the_skipped(tmp_path, monkeypatch, capsys):
    """No kit, no network (`--no-fetch`): detection (BCCD) and embeddings (NLTK) are skipped with the reason, the
    others run (stubbed here; tests/test_demo.py runs them for real), a failing one is listed
    as failed, the index shows every task, and only the failure makes the exit status non-zero."""
    import shared.cli

    ran = []

    def fake_run(task, argv):
        ran.append(task)
        if task == "seq2seq":
            raise ValueError("diverged <badly>")
        return 0

    monkeypatch.setattr(shared.cli, "run_task_command", fake_run)
    assert _demo(tmp_path, "--no-fetch", "--tasks", "classification", "detection") == 0
    assert ran == ["classification"]
    out = capsys.readouterr().out
    assert "detection" in out and "skipped" in out and "kts data fetch bccd" in out
    assert _demo(tmp_path, "--no-fetch") == 1
    index = json.loads((tmp_path / "reports" / "index.json").read_text())
    assert {t: e["status"] for t, e in index.items()} == {
        "classification": "ok", "detection": "skipped", "seq2seq": "failed", "embeddings": "skipped",
        "faces": "skipped", "style": "skipped"}
    assert "bccd" in index["detection"]["reason"] and "diverged" in index["seq2seq"]["reason"]
    assert "kts data fetch nltk-corpora" in index["embeddings"]["reason"]
    assert "kts data fetch style-images" in index["style"]["reason"]
    assert "kts data fetch olivetti" in index["faces"]["reason"]
    html = (tmp_path / "reports" / "index.html").read_text()
    assert "diverged &lt;badly&gt;" in html and "kts data fetch bccd" in html
    summary = capsys.readouterr().out.split("demo summary:")[1]
    assert all(t in summary for t in ("classification", "detection", "seq2seq", "embeddings"))


def test_demo_tries_to_fetch_and_skips_when_the_download_fails(tmp_path, monkeypatch, capsys):
    import socket

    import shared.cli

    with socket.socket() as probe:  # a port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setattr(shared.cli, "run_task_command", lambda task, argv: 0)
    assert _demo(tmp_path, "--tasks", "detection", "--mirror", dead) == 0
    reason = json.loads((tmp_path / "reports" / "index.json").read_text())["detection"]["reason"]
    assert "fetching it failed" in reason and dead in reason
    assert not (tmp_path / "empty" / "bccd" / "BCCD").exists()


def test_demo_default_run_folders_are_where_predict_looks(tmp_path, monkeypatch):
    import shared.cli

    seen = {}
    monkeypatch.setattr(shared.cli, "run_task_command", lambda task, argv: seen.update({task: argv}) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--tasks", "classification", "--reports-dir", "reports"]) == 0
    argv = seen["classification"]
    assert argv[argv.index("--workdir") + 1] == str(Path("runs") / "classification" / "demo")
