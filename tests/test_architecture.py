"""The package's shape (docs/architecture.md): imports flow one way, the root holds only the
foundation, and each metric is defined once. Static checks on the source (``ast``), including
imports inside functions, which still make one module depend on another."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "splatnet"

#: Modules allowed at the package root: the foundation every feature package builds on.
FOUNDATION = {"__init__", "__main__", "errors", "_validate", "_ext", "_limits", "_optional",
              "_constants", "_lazy", "config_io", "device", "gaussians", "cameras", "sh"}
#: Feature packages, lowest first: a package may import only those before it (and foundation).
LAYERS = ["io", "rendering", "clip", "metrics", "losses", "models", "scene", "pipeline",
          "optimization", "batch", "train", "sim", "viewer", "cli"]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(path: Path, name: str, mods: dict[str, Path]) -> set[str]:
    """Modules ``name`` imports (anywhere in the file, ``TYPE_CHECKING`` blocks excluded)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("splatnet"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith("splatnet"):
                continue
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in mods else node.module)
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module"):
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and str(arg.value).startswith("splatnet"):
                out.add(arg.value)
    out.discard(name)
    return {m for m in out if m in mods}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(path, name, mods) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_packages_import_only_lower_layers():
    rank = {p: i for i, p in enumerate(LAYERS)}

    def layer(mod: str) -> str | None:
        parts = mod.split(".")
        return parts[1] if len(parts) > 1 and parts[1] in rank else None

    wrong = []
    for mod, deps in _graph().items():
        own = layer(mod)
        if mod.endswith("__main__"):
            continue  # entry points sit above everything
        for dep in deps:
            other = layer(dep)
            if other is None or other == own:
                continue  # foundation, or the same package
            if own is None and other == "io":
                continue  # the foundation's own file formats (Gaussians.save_ply and friends)
            if own is None or rank[other] > rank[own]:
                wrong.append(f"{mod} -> {dep}")
    assert wrong == []


def test_the_root_holds_only_the_foundation():
    loose = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in FOUNDATION)
    assert loose == []
    packages = sorted(p.name for p in PKG.iterdir() if (p / "__init__.py").is_file())
    assert set(packages) <= set(LAYERS) | {"weights"}, packages


def test_each_metric_and_loss_is_defined_once():
    defs: dict[str, list[str]] = {}
    for path in PKG.rglob("*.py"):
        for m in re.finditer(r"^\s*def (\w*(?:psnr|ssim|photometric)\w*)\(", path.read_text(), re.M):
            defs.setdefault(m.group(1), []).append(str(path.relative_to(REPO)))
    psnr = {k: v for k, v in defs.items() if "psnr" in k}
    assert list(psnr) == ["psnr"] and len(psnr["psnr"]) == 1, psnr
    assert all(len(v) == 1 for v in defs.values()), defs
