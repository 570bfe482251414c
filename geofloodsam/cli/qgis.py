"""``geofloodsam qgis install|uninstall|choices``: the QGIS plugin in a user's QGIS profile.

The plugin (``geofloodsam/qgis/plugin``) is copied to
``<profiles>/<profile>/python/plugins/geofloodsam/`` with ``geofloodsam_env.json`` beside it,
which records the environment to call (this Python's ``geofloodsam`` executable) and the
menus' choices (:func:`choices`: the sensor registry's, so the plugin keeps no copy), and it is
enabled in the profile's ``QGIS/QGIS3.ini`` (``[PythonPlugins] geofloodsam=true``), which is
what both QGIS and ``qgis_process`` read. ``<profiles>`` is ``$QGIS_CUSTOM_CONFIG_PATH/profiles``
when that is set (as QGIS does), else QGIS's own folder (``~/.local/share/QGIS/QGIS3/profiles``
on Linux, honouring ``XDG_DATA_HOME``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from geofloodsam import __version__
from geofloodsam.errors import GeofloodsamError

PLUGIN_NAME = "geofloodsam"
PLUGIN_SOURCE = Path(__file__).resolve().parents[1] / "qgis" / "plugin"
PLUGIN_FILES = ("*.py", "metadata.txt")
ENV_FILE = "geofloodsam_env.json"
SECTION = "[PythonPlugins]"


def profiles_root() -> Path:
    """The folder of QGIS's user profiles, as QGIS resolves it."""
    custom = os.environ.get("QGIS_CUSTOM_CONFIG_PATH")
    if custom:
        return Path(custom).expanduser() / "profiles"
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "QGIS" / "QGIS3" / "profiles"


def profile_dir(profile: str) -> Path:
    """The folder of QGIS profile ``profile``; a one-line error for a bad name."""
    if not profile or profile in (".", "..") or any(c in profile for c in "/\\"):
        raise GeofloodsamError(f"--profile must be a QGIS profile name, got {profile!r}.")
    return profiles_root() / profile


def plugin_dir(profile: str) -> Path:
    """Where the plugin lives in ``profile``."""
    return profile_dir(profile) / "python" / "plugins" / PLUGIN_NAME


def this_environment() -> dict[str, str]:
    """What the plugin should call: this environment's ``geofloodsam`` (and its Python)."""
    python = Path(sys.executable).absolute()  # not resolved: a venv's python is a symlink
    scripts = python.parent
    exe = scripts / ("geofloodsam.exe" if os.name == "nt" else "geofloodsam")
    record = {"python": str(python), "version": __version__}
    if exe.is_file():
        record["executable"] = str(exe)
    return record


def choices() -> dict[str, list[str]]:
    """The plugin's menus, from this geofloodsam: ``--sensor`` (the sensor registry),
    ``--method`` and ``--sar-units`` choices, in the order the menus list them."""
    from geofloodsam.raster.sensors import SAR_UNITS, SENSORS
    from geofloodsam.water.methods import METHOD_CHOICES

    return {"sensor": list(SENSORS.choices()), "method": list(METHOD_CHOICES),
            "sar_units": list(SAR_UNITS)}


def set_enabled(ini: Path, enabled: bool | None) -> None:
    """Set (``None``: remove) ``geofloodsam`` in the ``[PythonPlugins]`` section of ``ini``.

    A line-level edit, so the rest of QGIS's settings file is left exactly as it was; the
    new file replaces the old one atomically.
    """
    lines = ini.read_text(encoding="utf-8").splitlines() if ini.exists() else []
    key = f"{PLUGIN_NAME}="
    start = next((i for i, ln in enumerate(lines) if ln.strip() == SECTION), None)
    if start is None:
        if enabled is None:
            return
        if lines and lines[-1].strip():
            lines.append("")
        lines += [SECTION, key + str(enabled).lower()]
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")),
                   len(lines))
        body = [ln for ln in lines[start + 1 : end] if not ln.strip().startswith(key)]
        if enabled is not None:
            body.insert(0, key + str(enabled).lower())
        lines = lines[: start + 1] + body + lines[end:]
    ini.parent.mkdir(parents=True, exist_ok=True)
    tmp = ini.with_name(f".{ini.name}.geofloodsam-tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, ini)


def install(profile: str = "default", environment: dict[str, str] | None = None) -> Path:
    """Copy the plugin into ``profile``, record the environment, enable it; return its folder."""
    target = plugin_dir(profile)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{PLUGIN_NAME}-", dir=target.parent))
    except OSError as exc:
        raise GeofloodsamError(
            f"cannot write to the QGIS profile folder {target.parent} "
            f"({exc.strerror or exc}): check --profile and QGIS_CUSTOM_CONFIG_PATH."
        ) from None
    try:
        for pattern in PLUGIN_FILES:
            for src in sorted(PLUGIN_SOURCE.glob(pattern)):
                shutil.copy2(src, staging / src.name)
        record = this_environment() if environment is None else environment
        record = {**record, "choices": choices()}
        (staging / ENV_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    set_enabled(profile_dir(profile) / "QGIS" / "QGIS3.ini", True)
    return target


def uninstall(profile: str = "default") -> bool:
    """Remove the plugin from ``profile`` and its settings entry; False if it was not there."""
    target = plugin_dir(profile)
    found = target.exists()
    if found:
        shutil.rmtree(target)
    set_enabled(profile_dir(profile) / "QGIS" / "QGIS3.ini", None)
    return found


@click.group("qgis")
def qgis() -> None:
    """The QGIS plugin: a Processing provider that calls this environment's geofloodsam."""


@qgis.command("install")
@click.option("--profile", default="default", show_default=True, help="QGIS user profile.")
def install_command(profile: str) -> None:
    """Install or update the plugin in a QGIS profile and enable it (QGIS and qgis_process).

    Restart QGIS afterwards; then Processing Toolbox > geofloodsam > segment, or
    `qgis_process run geofloodsam:segment -- INPUT=... OUTPUT_MASK=... OUTPUT_POLYGONS=...`.
    """
    target = install(profile)
    record = json.loads((target / ENV_FILE).read_text(encoding="utf-8"))
    click.echo(f"installed the QGIS plugin in {target}")
    click.echo(f"it calls {record.get('executable') or record['python'] + ' -m geofloodsam'}")


@qgis.command("choices")
def choices_command() -> None:
    """Print the plugin's menu choices (sensors, methods, SAR units) as one JSON line."""
    click.echo(json.dumps(choices()))


@qgis.command("uninstall")
@click.option("--profile", default="default", show_default=True, help="QGIS user profile.")
def uninstall_command(profile: str) -> None:
    """Remove the plugin from a QGIS profile."""
    if uninstall(profile):
        click.echo(f"removed {plugin_dir(profile)}")
    else:
        click.echo(f"the plugin was not installed in {profile_dir(profile)}")
