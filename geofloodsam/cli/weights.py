"""``geofloodsam weights``: list, fetch, locate and verify SAM checkpoints."""

from __future__ import annotations

import click

from geofloodsam.errors import GeofloodsamError
from geofloodsam.weights import checkpoints as w


def _human(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


@click.group()
def weights() -> None:
    """Manage SAM checkpoints: list, fetch, locate and verify them.

    Checkpoints are looked up in the folders of GEOFLOODSAM_WEIGHTS_DIR
    (os.pathsep-separated), then in the cache ($GEOFLOODSAM_HOME/weights, or the
    user cache folder); every file is checked against its size and SHA-256.
    """


@weights.command("list")
def list_() -> None:
    """Show the known checkpoints and where a verified copy is."""
    rows = [("NAME", "FILE", "SIZE", "PATH")]
    for name, entry in w.REGISTRY.items():
        status = {path: state for _, path, state in w.verify(name)}
        good = [p for p, state in status.items() if p is not None and state == "ok"]
        bad = [p for p, state in status.items() if p is not None and state != "ok"]
        where = str(good[0]) if good else "-"
        if bad and not good:
            where = f"BAD {bad[0]} (see `geofloodsam weights verify {name}`)"
        rows.append((name, entry.filename, _human(entry.size), where))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:3])) + "  " + r[3])
    click.echo(f"cache: {w.cache_dir()}")


@weights.command()
@click.argument("name")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def fetch(name: str, quiet: bool) -> None:
    """Download checkpoint NAME into the cache (verified) and print its path."""
    click.echo(str(w.fetch(name, progress=not quiet)))


@weights.command()
@click.argument("name")
def path(name: str) -> None:
    """Print the path of the verified local checkpoint NAME."""
    found = w.find_checkpoint(name)
    if found is None:
        entry = w.REGISTRY[name]
        places = ", ".join(str(d) for d in w.search_dirs())
        raise GeofloodsamError(
            f"{entry.filename} ({name}) is not in {places}: run `geofloodsam weights fetch "
            f"{name}` or place the file in a folder listed in {w.ENV_WEIGHTS_DIR}."
        )
    click.echo(str(found))


@weights.command("verify")
@click.argument("name", required=False)
def verify_(name: str | None) -> None:
    """Check size and SHA-256 of every local copy of NAME (default: all checkpoints).

    Exits with status 1 if any file is bad, or if NAME is given and has no copy.
    """
    rows = w.verify(name)
    failed = False
    for row_name, row_path, status in rows:
        click.echo(f"{row_name}  {status}  {row_path if row_path is not None else '-'}")
        if status == "missing":
            failed = failed or name is not None
        elif status != "ok":
            failed = True
    if failed:
        raise GeofloodsamError(
            "some checkpoints are bad or missing (see above): delete bad files and run "
            "`geofloodsam weights fetch NAME`."
        )
