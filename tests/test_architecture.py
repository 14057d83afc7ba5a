"""The import graph points one way (docs/architecture.md), checked on the source with `ast`.

Layers, lowest first: `modeling` (self-contained remote code) < shared readers and data (`vitpose_plus.file_io`,
`vitpose_plus.data`) < `evaluation`, `inference` < `conversion`, `hub_cards` < `training` < CLI modules. Every import
of a package module (top-level or inside a function) must go to its own layer or a lower one; `inference` never
imports `training` or `conversion`; `modeling` imports only torch, transformers (and what it requires), the
standard library, optional OpenCV and scipy; module-level imports have no cycles; argparse is used only in CLI modules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> import package (setup.cfg's package_dir)
PACKAGES = {"vitpose_plus": "vitpose_plus", "modeling": "vitpose_plus.modeling",
            "conversion": "vitpose_plus.conversion", "training": "vitpose_plus.training",
            "hub_cards": "vitpose_plus.hub_cards", "inference": "vitpose_plus.inference"}
LAYERS = {"vitpose_plus.modeling": 0, "vitpose_plus.file_io": 1, "vitpose_plus.data": 1,
          "vitpose_plus.evaluation": 2, "vitpose_plus.inference": 2, "vitpose_plus.conversion": 3,
          "vitpose_plus.hub_cards": 3, "vitpose_plus.training": 4}
CLI_LAYER = 5
#: what remote code may import: torch, transformers and what transformers itself requires (numpy, huggingface_hub,
#: pyyaml), optional OpenCV (with a torch fallback) and scipy (bottom-up grouping only; a clear error without it)
MODELING_THIRD_PARTY = {"torch", "transformers", "numpy", "huggingface_hub", "yaml", "cv2", "scipy"}


def _modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


MODULES = _modules()


def _layer(module: str) -> int:
    if module.rsplit(".", 1)[-1] in ("cli", "__main__") or module == "vitpose_plus":
        return CLI_LAYER  # the package root registers everything; CLI modules may import anything
    for prefix, layer in sorted(LAYERS.items(), key=lambda item: -len(item[0])):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    raise AssertionError(f"{module} is in no layer; add it to LAYERS in this test and to docs/architecture.md")


def _imports(module: str, path: Path, top_level_only: bool = False) -> list[tuple[str, int]]:
    """(imported module, line) of every import in `module`, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from package import submodule` imports the submodule
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names if f"{target}.{alias.name}" in
                      MODULES]
    return found


def _internal(target: str) -> str | None:
    """The package module `target` names (or the deepest existing parent), None for third-party modules."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def test_imports_point_down():
    problems = []
    for module, path in MODULES.items():
        layer = _layer(module)
        for target, line in _imports(module, path):
            internal = _internal(target) if target.startswith("vitpose_plus") else None
            if internal is None:
                if module.startswith("vitpose_plus.modeling") and not target.startswith("vitpose_plus"):
                    top = target.split(".")[0]
                    if top not in MODELING_THIRD_PARTY and top not in sys.stdlib_module_names and top != "__future__":
                        problems.append(f"{path.relative_to(ROOT)}:{line} modeling imports {target} (remote code "
                                        "may only use torch, transformers, numpy and the standard library)")
                continue
            if _layer(internal) > layer:
                problems.append(f"{path.relative_to(ROOT)}:{line} {module} (layer {layer}) imports {internal} "
                                f"(layer {_layer(internal)})")
    assert not problems, "\n".join(problems)


def test_inference_never_imports_training_or_conversion():
    for module, path in MODULES.items():
        if module.startswith("vitpose_plus.inference"):
            for target, line in _imports(module, path):
                assert not target.startswith(("vitpose_plus.training", "vitpose_plus.conversion")), (
                    f"{path.relative_to(ROOT)}:{line} imports {target}")


def test_no_import_cycles():
    graph = {module: {_internal(t) for t, _ in _imports(module, path, top_level_only=True)
                      if t.startswith("vitpose_plus")} - {None, module}
             for module, path in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            # importing a package's submodule runs the package's __init__ first; that edge is not a cycle
            if node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_argparse_only_in_cli_modules():
    for module, path in MODULES.items():
        if _layer(module) != CLI_LAYER:
            assert all(t != "argparse" for t, _ in _imports(module, path)), f"{path.relative_to(ROOT)} uses argparse"
