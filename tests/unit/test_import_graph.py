"""The import graph of bot/, actions/, channels/ and bench/ keeps the layers one way: domain modules never
import an adapter (the web app, the console, the CLI, channels, actions, Rasa glue, entry points), the shared
helpers import nothing of the project, channels reach the store only through services (no SQLAlchemy, no
models, no sessions of their own), and neither modules nor packages import each other in a circle. Every
import counts, also one inside a function (a deferred import still ties the two modules together).

The last tests run the same checks over a copy of the tree with one bad import added, to show they fail."""
from __future__ import annotations

import ast
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set

from bot.settings import PROJECT_ROOT

PACKAGES = ("bot", "actions", "channels", "bench")
# Modules that adapt the domain to the outside world. The domain (everything else) never imports them.
ADAPTERS = (
    "bot.web", "bot.console", "bot.app_context", "bot.cli", "channels", "actions", "bench",
    "bot.__main__", "bot.runner", "bot.cluster", "bot.training",  # entry points and the stack they start
    "bot.nlu", "bot.rasa_defaults", "bot.rasa_hooks", "bot.conversation_stores", "bot.locks",  # loaded by Rasa
)
SHARED = "bot.shared"  # helpers every layer may use: they use nothing of the project
CHANNELS = "channels"
# What a channel never touches: it calls services that run their own transactions.
CHANNEL_FORBIDDEN = ("sqlalchemy", "bot.models")


@dataclass
class ImportGraph:
    modules: Dict[str, Path]  # dotted name → file
    imports: Dict[str, Set[str]]  # module → the project's modules it imports
    external: Dict[str, Set[str]]  # module → other dotted names it imports (third party, standard library)
    session_calls: Dict[str, List[int]]  # module → lines calling `<something>.session(`


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path, packages: Sequence[str] = PACKAGES) -> ImportGraph:
    modules = {_module_name(root, path): path for package in packages if (root / package).is_dir()
               for path in sorted((root / package).rglob("*.py"))}

    def project_module(name: str) -> Optional[str]:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    imports: Dict[str, Set[str]] = {}
    external: Dict[str, Set[str]] = {}
    session_calls: Dict[str, List[int]] = {}
    for module, path in modules.items():
        found: Set[str] = set()
        others: Set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: List[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package
                    anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names]  # a module, or a name in `base`
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr == "session"):
                session_calls.setdefault(module, []).append(node.lineno)
            for name in names:
                target = project_module(name)
                if target is None:
                    others.add(name)
                elif target != module:
                    found.add(target)
        imports[module] = found
        external[module] = others
    return ImportGraph(modules, imports, external, session_calls)


def _within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer_violations(graph: ImportGraph) -> List[str]:
    """Domain modules importing an adapter."""
    return [f"{module} imports {target}" for module, targets in sorted(graph.imports.items())
            if not _within(module, ADAPTERS) for target in sorted(targets) if _within(target, ADAPTERS)]


def shared_violations(graph: ImportGraph) -> List[str]:
    return [f"{module} imports {target}" for module, targets in sorted(graph.imports.items())
            if _within(module, [SHARED]) for target in sorted(targets) if not _within(target, [SHARED])]


def channel_violations(graph: ImportGraph) -> List[str]:
    found = [f"{module} imports {name}" for module, names in sorted(graph.external.items())
             if _within(module, [CHANNELS]) for name in sorted(names) if _within(name, CHANNEL_FORBIDDEN)]
    found += [f"{module} imports {target}" for module, targets in sorted(graph.imports.items())
              if _within(module, [CHANNELS]) for target in sorted(targets) if _within(target, CHANNEL_FORBIDDEN)]
    found += [f"{module} opens a database session (line {line})" for module, lines in sorted(graph.session_calls.items())
              if _within(module, [CHANNELS]) for line in lines]
    return found


def package_of(module: str) -> str:
    """The package a module belongs to for the package-level graph: bot's subpackages (bot.loyalty, bot.web …)
    and top-level modules (bot.order_events …) each count as one; actions, channels and bench as one each."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "bot" and len(parts) > 1 else parts[0]


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def package_edges(graph: ImportGraph) -> Dict[str, Set[str]]:
    edges: Dict[str, Set[str]] = {}
    for module, targets in graph.imports.items():
        source = package_of(module)
        for target in targets:
            if package_of(target) != source:
                edges.setdefault(source, set()).add(package_of(target))
    return edges


def problems(graph: ImportGraph) -> Dict[str, List[str]]:
    return {
        "layers": layer_violations(graph),
        "shared": shared_violations(graph),
        "channels": channel_violations(graph),
        "module cycles": [" ↔ ".join(cycle) for cycle in cycles(graph.imports)],
        "package cycles": [" ↔ ".join(cycle) for cycle in cycles(package_edges(graph))],
    }


# --- the project -------------------------------------------------------------------------------------


def test_the_project_keeps_its_layers_one_way_without_cycles() -> None:
    graph = import_graph(PROJECT_ROOT)
    assert len(graph.modules) > 100 and "bot.order_events" in graph.modules
    assert problems(graph) == {"layers": [], "shared": [], "channels": [], "module cycles": [], "package cycles": []}


# --- the checks fail when they should ----------------------------------------------------------------


def _copy_of_the_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for package in PACKAGES:
        for path in (PROJECT_ROOT / package).rglob("*.py"):
            target = root / path.relative_to(PROJECT_ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


def _with(root: Path, module: str, source: str) -> ImportGraph:
    path = root / (module.replace(".", "/") + ".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return import_graph(root)


def _new(graph: ImportGraph) -> Dict[str, List[str]]:
    """The problems of `graph` that the project itself does not have."""
    baseline = problems(import_graph(PROJECT_ROOT))
    return {kind: [item for item in found if item not in baseline[kind]] for kind, found in problems(graph).items()}


def test_a_domain_module_importing_an_adapter_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    assert _new(import_graph(root)) == {kind: [] for kind in problems(import_graph(root))}
    graph = _with(root, "bot.loyalty.rogue", "def later():\n    from bot.web.api import post_order\n")
    assert _new(graph)["layers"] == ["bot.loyalty.rogue imports bot.web.api"]
    graph = _with(root, "bot.loyalty.rogue", "import channels.telegram\n")
    assert _new(graph)["layers"] == ["bot.loyalty.rogue imports channels.telegram"]


def test_a_shared_helper_importing_the_project_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    graph = _with(root, "bot.shared.rogue", "from bot.loyalty.program import Program\n")
    assert _new(graph)["shared"] == ["bot.shared.rogue imports bot.loyalty.program"]


def test_a_channel_opening_a_session_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    graph = _with(root, "channels.rogue", (
        "from sqlalchemy import select\nfrom bot.db import get_database\nfrom bot.models import Customer\n\n"
        "def who(sender):\n    with get_database().session() as session:\n        return session.get(Customer, 1)\n"))
    assert _new(graph)["channels"] == [
        "channels.rogue imports sqlalchemy.select", "channels.rogue imports bot.models",
        "channels.rogue opens a database session (line 6)"]


def test_a_cycle_of_modules_or_packages_fails_the_check(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    graph = _with(root, "bot.loyalty.ledger_view", "from bot.loyalty.rogue import x\n")
    graph = _with(root, "bot.loyalty.rogue", "from bot.loyalty.ledger_view import y\n")
    assert _new(graph)["module cycles"] == ["bot.loyalty.ledger_view ↔ bot.loyalty.rogue"]
    graph = _with(root, "bot.identity.rogue", "from bot.advocacy.referrals import attribute_order\n")
    assert _new(graph)["package cycles"] == [
        "bot.advocacy ↔ bot.catalog ↔ bot.consent ↔ bot.identity ↔ bot.loyalty ↔ bot.notices ↔ bot.outbox ↔ bot.quiz"]


def test_relative_imports_are_read_too(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    for module, source in (("bot.__init__", ""), ("bot.loyalty.__init__", ""), ("bot.web.__init__", ""),
                           ("bot.web.api", ""), ("bot.loyalty.rogue", "from ..web import api\n")):
        _with(root, module, source)
    assert layer_violations(import_graph(root)) == ["bot.loyalty.rogue imports bot.web.api"]


def test_every_name_imported_from_the_project_exists() -> None:
    """A deferred import (inside a function) fails only when that function runs: `make bench-predict` once
    imported a helper that the shared bench harness had replaced. Every `from <project module> import name`
    must resolve now."""
    import importlib

    missing = []
    for package in PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                        and node.module.split(".")[0] in PACKAGES):
                    continue
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if alias.name == "*" or hasattr(module, alias.name):
                        continue
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"{path.relative_to(PROJECT_ROOT)}: from {node.module} import {alias.name}")
    assert missing == []
