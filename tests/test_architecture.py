"""The import rules of ``docs/architecture.md``, checked on the source (ast): a wrong import fails here.

Every ``import``/``from … import`` counts, at module level or inside a function (a lazy import is still a
dependency). Relative imports are resolved against the importing module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "trainwise"

DRIVERS = ("trainwise.tasks", "trainwise.experiments", "trainwise.cli")
#: layer (module prefix) -> prefixes it must not import
RULES: dict[str, tuple[str, ...]] = {
    # the framework-free core: no tasks, drivers, sweep, CLI, plots or framework adapters
    **{f"trainwise.{core}": (*DRIVERS, "trainwise.sweep", "trainwise.plan", "trainwise.report", "trainwise.integrations")
       for core in ("noise", "optim", "adapt", "scaling", "theory", "units", "_io")},
    "trainwise.data": (*DRIVERS, "trainwise.sweep", "trainwise.plan", "trainwise.report", "trainwise.integrations"),
    # statistics over finished runs and the result schemas: no training drivers
    "trainwise.sweep": (*DRIVERS, "trainwise.report", "trainwise.integrations"),
    "trainwise.results": (*DRIVERS, "trainwise.report", "trainwise.plan"),
    "trainwise.plan": (*DRIVERS, "trainwise.report", "trainwise.sweep.runner"),
    "trainwise.calibration": DRIVERS,
    # adapters translate hooks into core calls
    "trainwise.integrations": (*DRIVERS, "trainwise.sweep", "trainwise.report"),
    # reports read result schemas, never runners
    "trainwise.report": (*DRIVERS, "trainwise.sweep.runner", "trainwise.noise.run", "trainwise.optim.compare"),
    # tasks are data and models; drivers sit above them
    "trainwise.tasks": ("trainwise.experiments", "trainwise.cli", "trainwise.sweep", "trainwise.report"),
    "trainwise.experiments": ("trainwise.cli", "trainwise.report"),
}

#: deprecated modules that forward old names to their new home (they import upwards on purpose, lazily)
SHIMS = {"trainwise.sweep.runner", "trainwise.sweep.branched", "trainwise.sweep.noise_hook", "trainwise.sweep.task_file",
         "trainwise.noise.run", "trainwise.optim.compare"}
#: known violations owned by someone else, to be removed when fixed: (module, imported)
KNOWN: set[tuple[str, str]] = set()  # (module, import) pairs allowed for now; none left


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = SRC) -> set[str]:
    """Every module ``path`` imports (``from a import b`` counts ``a`` and ``a.b``)."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(root: Path = SRC) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        name = _module_name(path, root)
        if name in SHIMS:
            continue
        for layer, forbidden in RULES.items():
            if not _matches(name, layer):
                continue
            for imported in sorted(imports_of(path, root)):
                if any(name == known and _matches(imported, target) for known, target in KNOWN):
                    continue
                bad = [f for f in forbidden if _matches(imported, f)]
                if bad:
                    out.append(f"{name} imports {imported} (layer {layer} must not import {bad[0]})")
    return out


def test_import_rules_hold():
    assert violations() == []


def test_the_checker_catches_a_wrong_import(tmp_path):
    """A core module that imports a task, even lazily inside a function, is reported."""
    fake = tmp_path / "trainwise" / "noise"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "bad.py").write_text("def f():\n    from ..tasks import get_task\n    import trainwise.cli.main\n")
    found = violations(tmp_path / "trainwise")
    assert any("trainwise.noise.bad imports trainwise.tasks" in v for v in found), found
    assert any("trainwise.cli.main" in v for v in found), found


@pytest.mark.parametrize("shim", sorted(SHIMS))
def test_shims_exist(shim):
    """The deprecated modules are still there (old import paths keep working)."""
    assert (SRC.parent / (shim.replace(".", "/") + ".py")).exists()
