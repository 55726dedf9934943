"""Which way things depend (DESIGN.md): zoo never imports zoo.train, training/, recipes/ or models/;
zoo.blocks imports nothing above it; blocks, quantizers and tokenizers
nothing from media, pipelines, metrics or the training kit; zoo's modules import each other in one
order, with no circle; `import zoo` is light and fast."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "zoo"
HEAVY = ("matplotlib", "torchmetrics", "tensorboard", "pesq", "pystoi", "skimage", "scipy", "diffusers", "transformers", "timm", "trimesh")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node


def test_zoo_never_imports_training_code():
    bad = []
    for f in ZOO.rglob("*.py"):
        if "train" in f.relative_to(ZOO).parts[:1]:
            continue
        for mod, _ in _imports(f):
            if mod.startswith(("zoo.train", "training", "recipes", "models", "tests")):
                bad.append(f"{f.relative_to(REPO)} imports {mod}")
    assert not bad, bad


def test_blocks_import_nothing_above_them():
    bad = []
    for f in (ZOO / "blocks").rglob("*.py"):
        for mod, _ in _imports(f):
            if mod.startswith("zoo") and not mod.startswith("zoo.blocks"):
                bad.append(f"{f.relative_to(REPO)} imports {mod}")
    for f in (ZOO / "quantizers").rglob("*.py"):
        for mod, _ in _imports(f):
            if mod.startswith("zoo") and not mod.startswith(("zoo.blocks", "zoo.quantizers", "zoo.api", "zoo.runtime")):
                bad.append(f"{f.relative_to(REPO)} imports {mod}")
    assert not bad, bad


def test_model_code_imports_nothing_from_media_pipelines_metrics_or_training():
    """blocks, quantizers and tokenizers take tensors: file and media handling, metrics and training sit above
    them (imports inside functions count too)."""
    bad = []
    for part in ("blocks", "quantizers", "tokenizers"):
        for f in (ZOO / part).rglob("*.py"):
            for mod, _ in _imports(f):
                if mod.startswith(("zoo.media", "zoo.pipelines", "zoo.metrics", "zoo.train")):
                    bad.append(f"{f.relative_to(REPO)} imports {mod}")
    assert not bad, bad


def test_io_and_geometry_sit_below_everything():
    """zoo.io (atomic writes) and zoo.geometry (mesh sampling) import no other zoo module: no import circle."""
    bad = [f"{name} imports {mod}" for name in ("io.py", "geometry.py")
           for mod, _ in _imports(ZOO / name) if mod.startswith("zoo")]
    assert not bad, bad


# zoo's modules from the bottom up: each imports only from the layers below its own (imports inside
# functions count; those under `if TYPE_CHECKING:` are annotations and never run). hub sits below api
# because Tokenizer.save_pretrained / from_pretrained / push_to_hub call it, and it finds the families
# through the registry at run time.
LAYERS = (
    ("zoo.io", "zoo.runtime", "zoo.geometry", "zoo.signal", "zoo.samplers", "zoo.streaming"),
    ("zoo.inputs",),
    ("zoo.registry",),
    ("zoo.hub",),
    ("zoo.api",),
    ("zoo.blocks",),
    ("zoo.quantizers",),
    ("zoo.tokenizers", "zoo.lm"),
    ("zoo.media", "zoo.cards"),
    ("zoo.metrics",),
    ("zoo.pipelines",),
    ("zoo.train",),
    ("zoo.cli",),
)


def _unit(module: str) -> str:
    """zoo.tokenizers.vat.model -> zoo.tokenizers (the unit LAYERS names)."""
    return ".".join(module.split(".")[:2])


def _runtime_imports(path: Path):
    """Module names imported anywhere in a file, except under `if TYPE_CHECKING:`."""
    def walk(node):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            yield from (m for child in node.orelse for m in walk(child))
            return
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield from ([f"zoo.{a.name}" for a in node.names] if node.module == "zoo" else [node.module])
        for child in ast.iter_child_nodes(node):
            yield from walk(child)
    yield from walk(ast.parse(path.read_text()))


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """graph: unit -> the zoo units it imports. Every import that is not strictly downward, or names a unit
    LAYERS does not place."""
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    bad = []
    for unit, imported in sorted(graph.items()):
        for other in sorted(imported - {unit}):
            if unit not in layer or other not in layer:
                bad.append(f"{unit} -> {other}: place {unit if unit not in layer else other} in LAYERS")
            elif layer[other] >= layer[unit]:
                bad.append(f"{unit} (layer {layer[unit]}) imports {other} (layer {layer[other]})")
    return bad


def test_zoo_modules_import_in_one_order():
    graph: dict[str, set[str]] = {}
    for f in ZOO.rglob("*.py"):
        if f == ZOO / "__init__.py":  # the package root re-exports lazily (PEP 562)
            continue
        unit = _unit(".".join(f.relative_to(REPO).with_suffix("").parts))
        graph.setdefault(unit, set())
        graph[unit] |= {_unit(m) for m in _runtime_imports(f) if m.startswith("zoo.") and m != "zoo.__version__"}
    assert not _layer_violations(graph), _layer_violations(graph)


def test_the_order_check_finds_a_circle_and_an_upward_import():
    assert _layer_violations({"zoo.api": {"zoo.hub"}, "zoo.hub": {"zoo.api"}}) == ["zoo.hub (layer 3) imports zoo.api (layer 4)"]
    assert _layer_violations({"zoo.blocks": {"zoo.media"}, "zoo.new": {"zoo.io"}}) == [
        "zoo.blocks (layer 5) imports zoo.media (layer 8)", "zoo.new -> zoo.io: place zoo.new in LAYERS"]


def test_heavy_dependencies_are_imported_inside_functions():
    """Module-level imports of metric, plotting, training or model-hub libraries make `import zoo` heavy."""
    bad = []
    for f in ZOO.rglob("*.py"):
        if "train" in f.relative_to(ZOO).parts[:1]:
            continue
        tree = ast.parse(f.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad += [f"{f.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in HEAVY]
    assert not bad, bad


def test_import_zoo_is_fast_and_light():
    code = (
        "import time, sys; t = time.perf_counter(); import zoo; dt = time.perf_counter() - t;"
        "zoo.load; zoo.list_models('*');"
        "print(dt); print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    dt, modules = out.stdout.splitlines()
    assert float(dt) < 2.0, f"import zoo took {dt} s"
    loaded = set(modules.split())
    assert not [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith("zoo.train")], sorted(
        m for m in loaded if m.split(".")[0] in HEAVY or m.startswith("zoo.train"))


CONVERTERS = ("remap_state_dict", "from_official_config")
FETCHES = ("hf_hub_download", "snapshot_download", "from_pretrained")  # hub and VAE downloads


def _convert_py(path: Path) -> bool:
    rel = path.relative_to(ZOO / "tokenizers")
    return len(rel.parts) == 2 and rel.name == "convert.py"


def test_only_the_families_convert_py_knows_upstream_layouts():
    """remap_state_dict, from_official_config and the hub/VAE fetching of a family are defined in its
    zoo/tokenizers/<family>/convert.py and nowhere else in zoo/ (zoo/hub.py fetches catalogue files)."""
    from zoo.registry import FAMILIES

    bad = []
    for f in ZOO.rglob("*.py"):
        in_tokenizers = (ZOO / "tokenizers") in f.parents
        if in_tokenizers and _convert_py(f):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in CONVERTERS:
                bad.append(f"{f.relative_to(REPO)}:{node.lineno} defines {node.name}")
            if in_tokenizers and isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                if name in FETCHES:
                    bad.append(f"{f.relative_to(REPO)}:{node.lineno} calls {name}")
    for name in FAMILIES:
        convert = ZOO / "tokenizers" / name / "convert.py"
        assert convert.is_file(), f"family {name} has no {convert.relative_to(REPO)}"
        defined = {n.name for n in ast.parse(convert.read_text()).body if isinstance(n, ast.FunctionDef)}
        bad += [f"{convert.relative_to(REPO)} does not define {c}" for c in CONVERTERS if c not in defined]
    assert not bad, bad


def _compares_shapes(node: ast.AST) -> bool:
    """A `==` / `!=` with a `.shape` on one side."""
    return isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops) and any(
        isinstance(n, ast.Attribute) and n.attr == "shape" for side in (node.left, *node.comparators) for n in ast.walk(side))


# Checkers still to be replaced by zoo.hub.check_state_dict, as (file, function); the test fails once one is gone,
# so that this list only shrinks.
OWN_CHECKERS: set[tuple[str, str]] = set()  # (file, function) allowed a check of their own: none


def test_one_strict_state_dict_check():
    """zoo.hub.check_state_dict is the one strict checker of conversion and init paths: no function in zoo/ or
    training/ reads a module's state_dict() and compares tensor shapes with it itself."""
    found = set()
    for f in [*ZOO.rglob("*.py"), *(REPO / "training").rglob("*.py")]:
        if f == ZOO / "hub.py":
            continue
        for fn in ast.walk(ast.parse(f.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            nodes = list(ast.walk(fn))
            reads = any(isinstance(n, ast.Call) and getattr(n.func, "attr", None) == "state_dict" for n in nodes)
            if reads and any(_compares_shapes(n) for n in nodes):
                found.add((str(f.relative_to(REPO)), fn.name))
    bad = [f"{f} {name} checks a state dict itself; use zoo.hub.check_state_dict" for f, name in sorted(found - OWN_CHECKERS)]
    bad += [f"{f} {name} no longer checks a state dict itself; drop it from OWN_CHECKERS" for f, name in sorted(OWN_CHECKERS - found)]
    assert not bad, bad
