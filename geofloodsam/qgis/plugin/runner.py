"""Run the ``geofloodsam`` CLI of another Python environment as a child process.

This module runs inside QGIS's own Python, where geofloodsam and its heavy dependencies
(torch, numpy, rasterio) are *not* installed: it uses the standard library only. It finds
the command to call, starts it with ``--progress-format json``, turns its JSON progress lines
into a fraction for the caller, passes other lines on as messages, and kills the child (and
anything it started) when the caller cancels.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: written by ``geofloodsam qgis install`` next to this file
ENV_FILE = Path(__file__).resolve().parent / "geofloodsam_env.json"
#: environment variables of QGIS's Python that must not leak into the child's Python/GDAL
SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "GDAL_DATA", "GDAL_DRIVER_PATH",
                "PROJ_LIB", "PROJ_DATA")
POLL_S = 0.1


class RunError(Exception):
    """The command could not be started or failed; the message is the CLI's own error line."""


class Cancelled(Exception):
    """The caller cancelled; the child process was killed."""


def configured_command(setting: str | None = None, env_file: Path = ENV_FILE) -> list[str]:
    """The command line that starts geofloodsam, as a list.

    Looked up in order: ``setting`` (the provider's setting: a path to a ``geofloodsam``
    executable), ``$GEOFLOODSAM_EXECUTABLE``, the ``geofloodsam_env.json`` written by
    ``geofloodsam qgis install``, then ``geofloodsam`` on ``PATH``.
    """
    for candidate in (setting, os.environ.get("GEOFLOODSAM_EXECUTABLE")):
        if candidate and candidate.strip():
            path = Path(candidate.strip()).expanduser()
            if not path.is_file():
                raise RunError(f"geofloodsam executable {path} does not exist: fix the "
                               "'geofloodsam executable' setting of the provider.")
            return [str(path)]
    if env_file.is_file():
        try:
            record = json.loads(env_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{env_file} is unreadable ({exc}): run `geofloodsam qgis install` "
                           "again.") from None
        exe = record.get("executable")
        if exe and Path(exe).is_file():
            return [exe]
        python = record.get("python")
        if python and Path(python).is_file():
            return [python, "-m", "geofloodsam"]
        raise RunError(f"the environment recorded in {env_file} ({exe or python}) is gone: run "
                       "`geofloodsam qgis install` from the environment to use.")
    found = shutil.which("geofloodsam")
    if found:
        return [found]
    raise RunError("no geofloodsam environment configured: run `geofloodsam qgis install` in "
                   "it, or set the provider's 'geofloodsam executable' setting.")


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the child: QGIS's, without its Python and GDAL/PROJ paths."""
    env = dict(os.environ if base is None else base)
    for name in SCRUBBED_ENV:
        env.pop(name, None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def parse_progress(line: str) -> tuple[str, float | None] | None:
    """``(desc, fraction)`` of a JSON progress line (fraction None: total unknown), else None."""
    if not line.startswith('{"event"'):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("event") != "progress":
        return None
    total, n = event.get("total"), event.get("n", 0)
    fraction = None
    if isinstance(total, (int, float)) and total > 0 and isinstance(n, (int, float)):
        fraction = max(0.0, min(1.0, n / total))
    return str(event.get("desc", "")), fraction


def _reader(stream, name: str, lines: queue.Queue) -> None:
    for raw in iter(stream.readline, ""):
        lines.put((name, raw.strip("\r\n")))
    lines.put((name, None))


def _kill(proc: subprocess.Popen) -> None:
    """Terminate the child and its process group; kill it if it does not stop in 5 s."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    if proc.poll() is None:
        try:
            if os.name == "posix":
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()


def run(
    command: list[str],
    args: list[str],
    on_progress: Callable[[str, float | None], None] | None = None,
    on_message: Callable[[str], None] | None = None,
    is_cancelled: Callable[[], bool] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> list[str]:
    """Run ``command --progress-format json *args``; return its stdout lines.

    ``on_progress(desc, fraction)`` gets every progress step, ``on_message(line)`` every other
    line of stderr and stdout, ``on_start(pid)`` the child's process id. When
    ``is_cancelled()`` turns true the child and its process group are killed and
    :class:`Cancelled` is raised. A non-zero exit raises :class:`RunError` with the CLI's
    ``Error:`` line (or the last lines it printed).
    """
    full = [*command, "--progress-format", "json", *args]
    try:
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", errors="replace", bufsize=1, env=child_env(),
            start_new_session=os.name == "posix",
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),
        )
    except OSError as exc:
        raise RunError(f"cannot start {full[0]}: {exc.strerror or exc}") from None
    if on_start is not None:
        on_start(proc.pid)
    lines: queue.Queue = queue.Queue()
    threads = [threading.Thread(target=_reader, args=(s, n, lines), daemon=True)
               for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for t in threads:
        t.start()
    stdout: list[str] = []
    tail: list[str] = []
    open_streams = 2
    try:
        while open_streams:
            if is_cancelled is not None and is_cancelled():
                _kill(proc)
                raise Cancelled(f"cancelled: {Path(full[0]).name} (pid {proc.pid}) was stopped")
            try:
                name, line = lines.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if line is None:
                open_streams -= 1
                continue
            progress = parse_progress(line) if name == "stderr" else None
            if progress is not None:
                if on_progress is not None:
                    on_progress(*progress)
                continue
            if name == "stdout":
                stdout.append(line)
            tail = (tail + [line])[-20:]
            if on_message is not None and line.strip():
                on_message(line)
        while proc.poll() is None:
            if is_cancelled is not None and is_cancelled():
                _kill(proc)
                raise Cancelled(f"cancelled: {Path(full[0]).name} (pid {proc.pid}) was stopped")
            time.sleep(POLL_S)
    except BaseException:
        if proc.poll() is None:
            _kill(proc)
        raise
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    if proc.returncode != 0:
        errors = [ln[len("Error: "):] for ln in tail if ln.startswith("Error: ")]
        message = errors[-1] if errors else " | ".join(ln for ln in tail[-5:] if ln.strip())
        raise RunError(message or f"{Path(full[0]).name} exited with status {proc.returncode}")
    return stdout

