"""The package's layers, read from the source: ``checkpoint.py`` is a leaf, ``datasets/`` sits below ``encoders/``, and
no import circle joins ``checkpoint.py``, ``world_model.py``, ``saved_model.py`` and ``encoders/``.

Every import counts, also those inside functions (they run as soon as the function does); those under
``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jepa_wms"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(name: str) -> set[str]:
    """The jepa_wms modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for dep in imports_of(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_checkpoint_is_a_leaf():
    assert imports_of("jepa_wms.checkpoint") == set()


def test_no_circle_between_checkpoints_world_model_and_encoders():
    core = [m for m in MODULES if m.startswith("jepa_wms.encoders")]
    core += ["jepa_wms.checkpoint", "jepa_wms.world_model", "jepa_wms.saved_model"]
    circles = [m for m in core if m in _reachable(m)]
    assert not circles, f"import circles through {circles}"


def test_datasets_sit_below_encoders():
    upward = {
        m: sorted(d for d in imports_of(m) if d.startswith(("jepa_wms.encoders", "jepa_wms.world_model")))
        for m in MODULES
        if m.startswith("jepa_wms.datasets")
    }
    assert not {m: d for m, d in upward.items() if d}
