"""Planning a ``segment`` run: every scene opened, checked and seeded before any tile runs.

Each scene becomes a :class:`ScenePlan`: its tile grid, scene-level stretch, prompts in its
pixels, the first seeds of its tiles, its output folder (created if needed, and removed
again if the run fails) and the run's :class:`~geofloodsam.segmentation.config.SegmentConfig`
with the scene's own bands. With several scenes, one prompts file serves them all: each
feature goes to every scene that contains it (:mod:`geofloodsam.segmentation.scenes`).
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
from rasterio.windows import Window

from geofloodsam.errors import GeofloodsamError
from geofloodsam.files.atomic import check_targets
from geofloodsam.raster.scene import Scene, Stretch, compute_stretch
from geofloodsam.segmentation.config import SegmentConfig
from geofloodsam.segmentation.outputs import output_paths
from geofloodsam.segmentation.prior_tiles import PRIOR_WORK, PriorJob, TileJob
from geofloodsam.segmentation.scenes import (
    assign_features,
    check_output_stems,
    describe_scenes,
    expand_scene_args,
    is_scene_list,
)
from geofloodsam.tiles.engine import ObjectInfo, build_seeds
from geofloodsam.tiles.executor import SceneSpec, WorkFunction
from geofloodsam.tiles.grid import TileGrid
from geofloodsam.tiles.growth import REFERENCE_RADIUS, Appearance
from geofloodsam.tiles.tasks import ChunkJob, Seed
from geofloodsam.tiles.work import run_chunk
from geofloodsam.vector.prompts import PromptSet, read_prompt_frame, read_prompts
from geofloodsam.water.methods import MethodChoice, choose
from geofloodsam.water.scene_prior import PriorSpec, scene_prior

#: a scene narrower than this (pixels, either side) holds no shape SAM could segment
MIN_SCENE_SIDE = 16


@dataclass
class ScenePlan:
    """A checked scene, ready to run: grid, stretch, prompts, first seeds, output folder."""

    number: int  # position among the run's scenes
    path: Path
    out: Path
    grid: TileGrid
    stretch: Stretch
    prompt_set: PromptSet | None  # None when promptless
    objects: dict[int, ObjectInfo]
    seeds: dict[int, list[Seed]]
    config: SegmentConfig  # the run's settings, with this scene's bands
    spec: SceneSpec  # what a tile task needs to read the scene
    created: list[Path]  # output folders created for it (removed again if the run fails)
    choice: MethodChoice | None = None  # method and decoder, and why
    prior: dict | None = None  # the scene prior's record (index / fused), for run.json
    prior_spec: PriorSpec | None = None  # what tiles need to rebuild it
    #: how tiles use the prior: the method (index, fused) or "select" (prompted, with an index)
    prior_method: str | None = None

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def work(self) -> WorkFunction:
        """The work function of this scene's tiles: SAM's, or the one its prior's use names."""
        if self.prior_spec is None:
            return run_chunk
        return PRIOR_WORK[self.prior_method or self.choice.method]

    def payload(self, job: ChunkJob) -> TileJob:
        """What a tile task of this scene is sent: its work function and the job, with the
        prior when it has one."""
        if self.prior_spec is None:
            return TileJob(self.work, job)
        return TileJob(self.work, PriorJob(job, self.spec.sensor, self.prior_spec.to_dict()))

    def open_scene(self) -> Scene:
        """Open the scene as it was planned (bands or composite, sensor)."""
        return self.spec.open()


def plan_scene(
    number: int, scene, outdir, config: SegmentConfig, stretch_spec, read_prompt_set
) -> ScenePlan:
    """Open and check ``scene``, prepare its output folder, seed its tiles."""
    with Scene.open(scene, config.bands, sensor=config.sensor) as sc:
        if min(sc.width, sc.height) < MIN_SCENE_SIDE:
            raise GeofloodsamError(
                f"raster {sc.path} is {sc.width}x{sc.height} pixels: too small to segment "
                f"(SAM needs at least {MIN_SCENE_SIDE} pixels a side); give a larger scene."
            )
        if not sc.composite:
            config = config.for_scene(sc.bands)
        out = Path(outdir) if outdir is not None else Path(sc.path).resolve().parent
        created = prepare_outdir(out)
        try:
            targets = output_paths(out, Path(sc.path).stem)
            if not config.save_prob:
                del targets["prob"]
            check_targets(list(targets.values()))  # a folder in the way: said before the run
            grid = TileGrid(sc.width, sc.height, config.tile_size, config.overlap)
            st = compute_stretch(sc, stretch_spec)
            prompt_set = read_prompt_set(sc)
            choice = choose(sc.sensor.sensor, config.method, config.decoder,
                            prompted=prompt_set is not None)
            prior = prior_spec = prior_method = None
            # prompted on a sensor with a water index: a click selects its water body of the
            # fused evidence (geofloodsam.segmentation.prompted_prior)
            selects = prompt_set is not None and choice.method == "sam"
            if choice.method in ("index", "fused") or (selects and sc.sensor.index_bands):
                with sc.reading(" (reading its water index bands)"):
                    water = scene_prior(sc.ds, sc.sensor)
                if water is not None and (not selects or _tiled(water)):
                    prior_spec = PriorSpec.of(water)
                    prior = {**water.to_dict(), "scene_water_fraction": _fraction(water)}
                    prior_method = "select" if selects else choice.method
                del water
            alike = None
            if prompt_set is not None and choice.method == "sam" and prior_method is None \
                    and not config.clicked_only:  # plain SAM: the scene's water like its clicks
                alike = click_colours(sc, st, prompt_set)
            objects, seeds = build_seeds(grid, prompt_set, alike)
        except BaseException:
            remove_dirs(created)
            raise
        return ScenePlan(
            number, Path(sc.path), out, grid, st, prompt_set, objects, seeds, config,
            SceneSpec.of(sc, st), created, choice, prior, prior_spec, prior_method,
        )


def click_colours(sc: Scene, stretch: Stretch, prompt_set: PromptSet) -> Appearance | None:
    """The colours around the scene's water clicks (through ``stretch``, as the tiles see
    them): the evidence of the water-alike object; None without a water click."""
    look = None
    radius = REFERENCE_RADIUS
    for obj in prompt_set.objects:
        for x, y in obj.points[obj.labels == 1] if obj.kind != "box" else ():
            c0, r0 = max(int(np.floor(x)) - radius, 0), max(int(np.floor(y)) - radius, 0)
            c1 = min(int(np.floor(x)) + radius + 1, sc.width)
            r1 = min(int(np.floor(y)) + radius + 1, sc.height)
            rgb, _ = sc.read_rgb(Window(c0, r0, c1 - c0, r1 - r0), stretch)
            here = Appearance.at(rgb, np.array([[x - c0, y - r0]]))
            if here is not None:
                look = here.merged(look)
    return look


def _tiled(prior) -> bool:
    """Whether tiles can rebuild ``prior`` (one evidence: NDWI or one polarisation)."""
    try:
        PriorSpec.of(prior)
    except ValueError:
        return False
    return True


def _fraction(prior) -> float | None:
    """Share of the prior's valid pixels that it calls water (as read for the threshold)."""
    valid = prior.valid
    n = int(valid.sum())
    return round(float(prior.water().sum() / n), 4) if n else None


def one_scene_prompts(prompts, prompts_crs, prompts_layer=None):
    """Prompt reader of a single-scene run: features outside the raster are warned about."""
    def read(sc):
        if prompts is None:
            return None
        prompt_set = read_prompts(
            prompts, sc.crs, sc.transform, sc.width, sc.height, prompts_crs=prompts_crs,
            layer=prompts_layer,
        )
        if prompt_set.n_outside:
            click.echo(
                f"Warning: {prompt_set.n_outside} of {prompt_set.n_features} prompt "
                "feature(s) lie outside the raster and are ignored.",
                err=True,
            )
        return prompt_set

    return read


def plan_scenes(
    scenes, outdir, config: SegmentConfig, stretch_spec, quiet: bool
) -> list[ScenePlan]:
    """Check every scene (one band layout), give each the prompt features inside it, plan."""
    paths = expand_scene_args(scenes)
    infos = describe_scenes(paths, config.bands, config.sensor)
    check_output_stems(paths, next_to_scenes=outdir is None)
    prompts, prompts_crs = config.prompts, config.prompts_crs
    chosen = list(paths)
    read = one_scene_prompts(None, None)  # promptless: every scene, no prompt set
    if prompts is not None:
        frame = read_prompt_frame(prompts, prompts_crs, config.prompts_layer)
        with warnings.catch_warnings():  # numpy's on prompts that do not reproject
            warnings.simplefilter("ignore")
            assignment = assign_features(frame, infos, warn=False)
        if assignment.outside.size:
            click.echo(
                f"Warning: {assignment.outside.size} of {len(frame)} prompt feature(s) lie "
                "outside every scene and are ignored.",
                err=True,
            )
        for path, prompted in zip(paths, assignment.prompted, strict=True):
            if not prompted:
                click.echo(
                    f"Warning: no water point or box of {prompts} lies in {path}: skipped, "
                    "no outputs for it.",
                    err=True,
                )
        if not quiet:
            click.echo(assignment.summary(), err=True)
        chosen = [p for p, ok in zip(paths, assignment.prompted, strict=True) if ok]

        def read(sc):
            return read_prompts(
                prompts, sc.crs, sc.transform, sc.width, sc.height, frame=frame
            )

    plans: list[ScenePlan] = []
    try:
        for number, path in enumerate(chosen):
            plans.append(plan_scene(number, path, outdir, config, stretch_spec, read))
    except BaseException:
        for plan in reversed(plans):
            remove_dirs(plan.created)
        raise
    return plans


def scene_paths(scenes) -> list | None:
    """The scenes of a run given several (a list, or a scene list file); None for one."""
    if isinstance(scenes, (list, tuple)):
        return list(scenes)
    if isinstance(scenes, (str, Path)) and is_scene_list(scenes):
        return [scenes]
    return None




def prepare_outdir(outdir: Path) -> list[Path]:
    """Create ``outdir`` if needed and check it is writable; return the folders created."""
    created = []
    parent = outdir.absolute()
    while not parent.exists() and parent != parent.parent:
        created.append(parent)
        parent = parent.parent
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=outdir):
            pass
    except OSError as exc:
        remove_dirs(created)
        raise GeofloodsamError(
            f"cannot write to output folder {outdir} ({exc.strerror or type(exc).__name__}): "
            "choose another with -o/--outdir."
        ) from None
    return created


def remove_dirs(created: list[Path]) -> None:
    """Remove the folders a failed run created (deepest first), if they are empty."""
    for path in created:
        try:
            path.rmdir()
        except OSError:
            pass
