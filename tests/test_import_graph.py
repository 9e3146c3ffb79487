"""The package's imports run downward through its layers and never in a circle (read with ast, nothing imported)."""
import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "stylegan_jax"

# Lowest layer first. A module belongs to the layer of the longest prefix below that names it; a
# module may import from its own layer and the layers below it. Every module must have a layer.
LAYERS = (
    ("base", ("stylegan_jax", "stylegan_jax.fileio", "stylegan_jax.images", "stylegan_jax.tree_shapes",
              "stylegan_jax.orbax_noise", "stylegan_jax.train_state",
              "stylegan_jax.runtime",
              "stylegan_jax.data._tf")),  # data._tf: the lazy TensorFlow import, fileio's too
    ("ops", ("stylegan_jax.ops", "stylegan_jax.augment", "stylegan_jax.data")),
    # convert builds networks; perceptual holds the frozen Inception, VGG16 and LPIPS that sampling and eval share
    ("networks", ("stylegan_jax.networks", "stylegan_jax.convert", "stylegan_jax.perceptual")),
    ("sampling", ("stylegan_jax.sampling", "stylegan_jax.checkpoint")),  # sampling loads checkpoints
    ("eval", ("stylegan_jax.eval",)),
    ("training", ("stylegan_jax.training",)),
    ("command lines", ("stylegan_jax.main", "stylegan_jax.generate", "stylegan_jax.evaluate", "stylegan_jax.project",
                       "stylegan_jax.export", "stylegan_jax.metrics_table", "stylegan_jax.style_mix",
                       "stylegan_jax.video",
                       "stylegan_jax.dataset_tool", "stylegan_jax.configs_common")),
)

# Known upward imports, to be removed as they are fixed; any other upward import fails. None are left:
# give a shared piece a home below both of its users instead of adding one here.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def _module_files() -> dict[str, pathlib.Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _imports(name: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """Package modules that `name` imports anywhere in its body (inside functions too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                         for alias in node.names)
    return {target for target in found if target in modules and target != name}


def _graph() -> dict[str, set[str]]:
    files = _module_files()
    return {name: _imports(name, path, set(files)) for name, path in files.items()}


def _layer(module: str) -> int | None:
    matches = [(len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".") and prefix != "stylegan_jax"]
    return max(matches)[1] if matches else None


def test_every_module_has_a_layer():
    assert [name for name in _graph() if _layer(name) is None] == []


def test_imports_do_not_run_upward():
    upward = {(a, b) for a, targets in _graph().items() for b in targets
              if _layer(a) is not None and _layer(b) is not None and _layer(b) > _layer(a)}
    new = sorted(f"{a} ({LAYERS[_layer(a)][0]}) imports {b} ({LAYERS[_layer(b)][0]})" for a, b in upward - KNOWN_UPWARD)
    assert new == []
    assert sorted(KNOWN_UPWARD - upward) == [], "fixed: remove these from KNOWN_UPWARD"


def test_no_import_cycles():
    graph = _graph()
    cycles, done = [], set()

    def visit(module: str, stack: list[str]) -> None:
        if module in stack:
            cycles.append(stack[stack.index(module):] + [module])
            return
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, stack + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []
