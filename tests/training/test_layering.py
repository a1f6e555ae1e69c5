"""Training stands on the ground floor (specs, features, registry, settings), never on the gateway;
the ground-floor modules it shares with the gateway import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from djserve.settings import PROJECT_ROOT

GROUND_FLOOR = [
    "djserve/audio_features.py",
    "djserve/beats.py",
    "djserve/catalogue.py",
    "djserve/registry.py",
    "djserve/isolation.py",
    "djserve/specs/labels.py",
    "djserve/specs/features.py",
    "djserve/repository/layout.py",
]
ABOVE_GROUND = ("bentos", "training", "exporters", "loadtest", "clients", "djserve.mlops", "djserve.cli", "djserve.gateway")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _climbs(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "training").rglob("*.py")))
def test_training_never_imports_the_gateway(path):
    assert _climbs(imported_modules(PROJECT_ROOT / path), ("bentos", "clients", "loadtest")) == []


@pytest.mark.parametrize("path", GROUND_FLOOR)
def test_shared_ground_floor_modules_import_nothing_above_them(path):
    assert _climbs(imported_modules(PROJECT_ROOT / path), ABOVE_GROUND) == []
