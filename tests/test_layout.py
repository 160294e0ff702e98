"""The package's shape: stages import only downwards, modules stay short, nothing uses the deprecated shims.

Every module under ``lems/`` is parsed with :mod:`ast`; nothing is imported or executed. Imports inside
functions, classes and ``if`` blocks count like top-level ones.

Stages, lowest first (a module may import its own stage and any lower one, never a higher one)::

    execution  <-  data  <-  model  <-  policies  <-  training / evaluation / live  <-  cli

Deprecated re-export shims (the old import paths, kept for one release) are exempt from the stage rule: they
exist to point an old name at its new home. A module is a shim when its docstring's first line says
"deprecated" or its top level calls ``warnings.warn(..., DeprecationWarning)``. No other lems module may
import a shim.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lems"
MAX_LINES = 700
LONG_MODULES_ALLOWED = {"lems.layers.decoder"}

# (stage, module name prefixes): a module belongs to the stage of its longest matching prefix; a prefix covers
# the module itself and everything below it (``lems.data`` covers ``lems.data.windows``).
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("execution", ("lems.execution",)),
    ("data", ("lems.data",)),
    ("model", ("lems", "lems.layers", "lems.models", "lems.loss", "lems.metrics", "lems.data_formater",
               "lems.batching", "lems.utils", "lems.runtime")),
    ("policies", ("lems.policies",)),
    ("training / evaluation / live", ("lems.training", "lems.evaluation", "lems.live", "lems.distributed")),
    ("cli", ("lems.cli", "lems.__main__")),
]
# ``lems`` itself (lems/__init__.py) registers the layers, models, loss and metrics: it sits in the model stage.
# An exact-name entry: "lems" as a prefix would otherwise cover every module.
EXACT_ONLY = {"lems"}
STAGE_RANK = {name: rank for rank, (name, _) in enumerate(STAGES)}


@dataclass(frozen=True)
class Module:
    """One parsed lems module."""

    name: str  # dotted, e.g. "lems.data.windows"
    path: Path
    tree: ast.Module
    lines: int


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parse_all() -> dict[str, Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = _module_name(path)
        modules[name] = Module(name, path, ast.parse(text, filename=str(path)), len(text.splitlines()))
    return modules


MODULES = _parse_all()


def stage_of(name: str) -> str | None:
    """The stage of a module name (longest matching prefix), ``None`` when no stage covers it."""
    best, best_length = None, -1
    for stage, prefixes in STAGES:
        for prefix in prefixes:
            covers = name == prefix or (prefix not in EXACT_ONLY and name.startswith(prefix + "."))
            if covers and len(prefix) > best_length:
                best, best_length = stage, len(prefix)
    return best


def _is_deprecation_warning(call: ast.Call) -> bool:
    func = call.func
    named_warn = (isinstance(func, ast.Attribute) and func.attr == "warn") or (
        isinstance(func, ast.Name) and func.id == "warn")
    arguments = [*call.args, *(keyword.value for keyword in call.keywords)]
    return named_warn and any(isinstance(a, ast.Name) and a.id == "DeprecationWarning" for a in arguments)


def is_shim(module: Module) -> bool:
    """A deprecated re-export module: its docstring's first line says so, or its top level warns on import."""
    docstring = ast.get_docstring(module.tree) or ""
    if "deprecated" in docstring.strip().split("\n")[0].lower():
        return True
    return any(isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call)
               and _is_deprecation_warning(statement.value) for statement in module.tree.body)


SHIMS = {name for name, module in MODULES.items() if is_shim(module)}


def _resolve_relative(module: Module, node: ast.ImportFrom) -> str:
    package = module.name.split(".")
    if module.path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imported_modules(module: Module) -> list[tuple[str, int]]:
    """``(lems module name, line)`` of every lems import anywhere in the module (functions included).

    ``from lems.x import y`` counts as importing ``lems.x.y`` when that is a module, else ``lems.x``.
    """
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, node) if node.level else node.module
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.append((submodule if submodule in MODULES else source, node.lineno))
    return [(name, line) for name, line in found if name == "lems" or name.startswith("lems.")]


def _location(module: Module, line: int) -> str:
    return f"{module.path.relative_to(PACKAGE.parent)}:{line}"


def stage_violations() -> list[str]:
    """Modules outside every stage, and imports of a higher stage (shims exempt)."""
    problems = []
    for name, module in MODULES.items():
        if name in SHIMS:
            continue
        stage = stage_of(name)
        if stage is None:
            problems.append(f"{_location(module, 1)}: {name} belongs to no stage")
            continue
        for target, line in imported_modules(module):
            target_stage = stage_of(target)
            if target_stage is not None and STAGE_RANK[target_stage] > STAGE_RANK[stage]:
                problems.append(f"{_location(module, line)}: {name} ({stage}) imports {target} ({target_stage})")
    return problems


def long_modules() -> list[str]:
    return [f"{_location(module, 1)}: {module.lines} lines (limit {MAX_LINES})" for name, module in MODULES.items()
            if module.lines > MAX_LINES and name not in LONG_MODULES_ALLOWED]


def shim_imports() -> list[str]:
    return [f"{_location(module, line)}: {name} imports the deprecated {target}"
            for name, module in MODULES.items() if name not in SHIMS
            for target, line in imported_modules(module) if target in SHIMS]


# --------------------------------------------------------------------------------------------------------
# The rules, on the real tree
# --------------------------------------------------------------------------------------------------------
RESTRUCTURE = lambda test: test  # noqa: E731  (the rules were xfail while the restructure was in progress)


@RESTRUCTURE
def test_no_module_imports_a_higher_stage():
    problems = stage_violations()
    assert not problems, "\n".join(problems)


@RESTRUCTURE
def test_no_module_is_over_700_lines():
    problems = long_modules()
    assert not problems, "\n".join(problems)


@RESTRUCTURE
def test_no_module_imports_a_deprecated_shim():
    problems = shim_imports()
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------------------------------------
# The checker itself: it sees what it must (so a green layout test means something)
# --------------------------------------------------------------------------------------------------------
def _fake(name: str, source: str) -> Module:
    """A module ``name`` (a plain file, not a package) with the given source, not on disk."""
    path = PACKAGE.joinpath(*name.split(".")[1:]).with_suffix(".py")
    return Module(name, path, ast.parse(source), len(source.splitlines()))


def test_stages_by_longest_prefix():
    assert stage_of("lems.execution.orders") == "execution" and stage_of("lems.execution") == "execution"
    assert stage_of("lems.data.windows") == "data" and stage_of("lems.data_formater") == "model"
    assert stage_of("lems") == "model" and stage_of("lems.policies.model") == "policies"
    assert stage_of("lems.__main__") == "cli" and stage_of("lems.live.session") == "training / evaluation / live"
    assert stage_of("lems.somewhere_new") is None  # a new top-level module must be given a stage


def test_imports_are_found_inside_functions_and_relative():
    source = ("import os\nfrom lems.execution import OrderSpec\n"
              "def f():\n    from lems.policies import base\n    import lems.cli\n"
              "from . import windows\nfrom .. import loss\n")
    found = dict(imported_modules(_fake("lems.data.features", source)))
    assert {"lems.execution", "lems.cli", "lems.data.windows", "lems.loss"} <= set(found)
    assert "os" not in found and found["lems.cli"] == 5


def test_shims_are_recognised():
    warns = _fake("lems.old", 'import warnings\nwarnings.warn("moved", DeprecationWarning, stacklevel=2)\n')
    told = _fake("lems.old", '"""Deprecated: use lems.policies."""\nfrom lems.policies import *\n')
    plain = _fake("lems.old", '"""Schedules."""\ndef f():\n    warnings.warn("x", DeprecationWarning)\n')
    assert is_shim(warns) and is_shim(told) and not is_shim(plain)  # a warning inside a function is no shim
