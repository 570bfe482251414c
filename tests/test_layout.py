"""The package layout: subpackages follow the data flow, none imports one above it, no cycles,
and the command line and the top-level API load without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geofloodsam"

#: bottom to top: each may import only itself and those before it
LAYERS = (
    "errors", "progress", "files", "qgis", "geo", "raster", "vector", "weights", "model",
    "tiles", "stitch", "datasets", "water", "evaluation", "training", "segmentation", "change",
    "cli",
)
#: siblings that must not import each other although one is listed before the other
APART = {"segmentation": ("evaluation", "training"), "change": ("evaluation", "training")}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """geofloodsam modules imported by the file (``from X import y`` counts X and X.y)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "geofloodsam":
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("geofloodsam."))
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2:
        return None
    return "cli" if parts[1] == "__main__" else parts[1]


MODULES = _modules()


def test_every_subpackage_is_placed_in_a_layer_and_documented() -> None:
    subpackages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    flat = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert subpackages | flat == set(LAYERS)
    for name in subpackages:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"geofloodsam/{name}/__init__.py needs its docstring"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m)))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    own = _layer(module)
    rank = LAYERS.index(own)
    for imported in _imports(MODULES[module], top_level_only=False):
        other = _layer(imported)
        if other is None or other not in LAYERS:
            continue
        assert LAYERS.index(other) <= rank, f"{module} imports {imported}, a layer above it"
        assert other not in APART.get(own, ()), f"{module} imports {imported}"


def test_no_import_cycles() -> None:
    graph = {
        m: {i for i in _imports(p, top_level_only=True) if i in MODULES and i != m}
        for m, p in MODULES.items()
    }
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n] if n in stack else [m, n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, [*stack, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


@pytest.mark.parametrize(
    "code",
    [
        "import geofloodsam.cli",
        "import geofloodsam",
        "from click.testing import CliRunner; from geofloodsam.cli import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output;"
        "assert 'segment' in r.output",
        "from click.testing import CliRunner; from geofloodsam.cli import main;"
        "r = CliRunner().invoke(main, ['segment', '--help']); assert r.exit_code == 0",
    ],
)
def test_command_line_and_package_load_without_torch(code: str) -> None:
    check = code + "; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


#: commands that need no model, with the files they read: (name, argv); ``{chips}`` is a
#: synthetic Sen1Floods11 folder, ``{tmp}`` a scratch folder, ``{repo}`` the repository
NO_MODEL_COMMANDS = [
    ("segment --method index", ["segment", "{chips}/S1Hand/Alpha_1_S1Hand.tif",
                                "--method", "index", "-o", "{tmp}/index", "-q"]),
    ("evaluate-raster", ["evaluate-raster", "{repo}/sample_tiles/delta_4band_truth.tif",
                         "{repo}/sample_tiles/delta_4band_truth.tif", "-o", "{tmp}/report"]),
    ("weights list", ["weights", "list"]),
    ("weights path", ["weights", "path", "vit_t"]),
    ("qgis install", ["qgis", "install", "--profile", "check"]),
    ("qgis uninstall", ["qgis", "uninstall", "--profile", "check"]),
    pytest.param("make-samples", ["make-samples", "{tmp}/samples", "--quiet"],
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("name", "argv"), NO_MODEL_COMMANDS, ids=[
    c.values[0] if hasattr(c, "values") else c[0] for c in NO_MODEL_COMMANDS])
def test_commands_without_a_model_import_no_torch(
    name: str, argv: list[str], tmp_path, write_chip_set
) -> None:
    """Each runs for real in a fresh process, which must end without torch loaded."""
    chips = write_chip_set(tmp_path / "chips", sensors=("s1",))
    args = [a.format(chips=chips, tmp=tmp_path, repo=PACKAGE.parent) for a in argv]
    check = (
        "import sys; from geofloodsam.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert not e.code, f'exit status {e.code}'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "qgis"),
           "GEOFLOODSAM_HOME": str(tmp_path / "home")}
    if name == "qgis uninstall":  # something to uninstall
        subprocess.run([sys.executable, "-m", "geofloodsam", "qgis", "install", "--profile",
                        "check"], env=env, check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-c", check, *args], capture_output=True, text=True,
                         env=env)
    assert run.returncode == 0, run.stdout[-1000:] + run.stderr[-2000:]


def test_public_api_is_lazy_and_complete() -> None:
    import geofloodsam

    for name in ("load_model", "segment", "flood", "finetune", "evaluate", "evaluate_raster"):
        assert callable(getattr(geofloodsam, name)), name
        assert name in dir(geofloodsam)
    with pytest.raises(AttributeError):
        geofloodsam.no_such_thing  # noqa: B018


def test_architecture_page_is_generated_from_the_docstrings() -> None:
    script = PACKAGE.parent / "docs" / "make_architecture.py"
    run = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
