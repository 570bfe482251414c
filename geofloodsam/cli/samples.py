"""``geofloodsam make-samples [OUTDIR]``: regenerate the synthetic sample scenes."""

from __future__ import annotations

from pathlib import Path

import click

from geofloodsam.errors import GeofloodsamError


@click.command("make-samples")
@click.argument("outdir", default="sample_tiles", type=click.Path(file_okay=False, path_type=Path))
@click.option("--quiet", is_flag=True, help="Print nothing.")
def make_samples(outdir: Path, quiet: bool) -> None:
    """Write the sample scenes (GeoTIFFs, truth masks, prompts) into OUTDIR.

    The files are byte-for-byte reproducible: running this into sample_tiles/ rewrites the
    committed files unchanged.
    """
    from geofloodsam.datasets import sample_scenes as samples
    from geofloodsam.files.hashing import sha256_file

    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GeofloodsamError(
            f"cannot create output folder {outdir} ({exc.strerror}): choose a writable OUTDIR."
        ) from None
    try:
        written = samples.make_samples(outdir)
    except PermissionError as exc:
        raise GeofloodsamError(
            f"cannot write into {outdir} ({exc.strerror}): choose a writable OUTDIR."
        ) from None
    if not quiet:
        for path in written:
            size = path.stat().st_size
            click.echo(f"{path}  {size:>9,d} bytes  sha256 {sha256_file(path)[:16]}")
        click.echo(f"{len(written)} files written to {outdir}")
