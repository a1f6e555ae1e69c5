"""The layers: the ground floor (specs, schemas, repository layout, the Triton process, settings and
the contracts MLOps and the gateway share) imports nothing above it, and the packages standing on
it do not reach into each other where a shared contract does the job. Every import statement
counts, including the ones inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

OPERATING = ("djserve.cli", "djserve.mlops", "djserve.gateway", "djserve.stack")
"""The parts of the `djserve` package that stand on the ground floor (the rest of it is the floor)."""

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "ground floor": ("bentos", "training", "exporters", "loadtest", "clients", *OPERATING),
    "djserve.mlops": ("bentos", "training", "loadtest", "djserve.cli"),
    "exporters": ("bentos", "training", "loadtest", "djserve.mlops", "djserve.registry", "djserve.cli"),
    "bentos": ("training", "exporters", "loadtest", "djserve.mlops", "djserve.cli", "djserve.registry"),
    "training": ("bentos", "loadtest", "djserve.mlops", "djserve.cli"),
}


def _layer(module: str) -> str | None:
    if module.startswith("djserve."):
        return "djserve.mlops" if module.startswith("djserve.mlops") else (
            None if module.startswith(OPERATING) else "ground floor")
    top = module.split(".")[0]
    return top if top in FORBIDDEN else None


def _modules() -> dict[str, Path]:
    out = {}
    for package in ("djserve", "bentos", "exporters", "training"):
        for path in (ROOT / package).rglob("*.py"):
            out[".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _climbs(imported: str, forbidden: tuple[str, ...]) -> bool:
    return any(imported == f or imported.startswith(f + ".") for f in forbidden)


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_import_climbs_or_crosses(layer):
    offences = [
        f"{module} imports {imported}"
        for module, path in _modules().items()
        if _layer(module) == layer
        for imported in sorted(_imports(path))
        if _climbs(imported, FORBIDDEN[layer])
    ]
    assert not offences, "\n".join(offences)


def test_the_check_sees_an_offence():
    assert _layer("djserve.traffic") == "ground floor" and _layer("djserve.mlops.promotion") == "djserve.mlops"
    assert _climbs("bentos.monitoring", FORBIDDEN["ground floor"])
    assert not _climbs("bentoml", FORBIDDEN["ground floor"])
