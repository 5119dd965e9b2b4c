"""Honest packaging: every module imports, every third-party import is a declared dependency."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import sys
import tomllib
from pathlib import Path

import numpy as np
from scipy import sparse

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("streams", "models", "serving", "evaluation", "scripts")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _canonical(re.split(r"[\s<>=!~;\[(]", spec.strip(), maxsplit=1)[0])


def _imported_top_names(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def test_every_module_of_the_package_imports() -> None:
    """Catches a module that fails at import (a missing dependency, a broken import path, an
    import cycle) and a source folder that would not be packaged (no ``__init__.py``), even
    when no other test happens to import that module."""
    found: list[str] = []
    for name in PACKAGES:
        package = importlib.import_module(name)
        found.append(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            importlib.import_module(info.name)
            found.append(info.name)
    on_disk = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
               for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    assert on_disk - set(found) == set(), "source files that pkgutil (and packaging) miss"
    assert len(found) > 60
    include = _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {f"{p}*" for p in PACKAGES} <= set(include)


def test_every_third_party_import_is_declared() -> None:
    """Catches code importing a package that ``pip install .`` would not bring (scikit-learn
    in a baseline once did), and tests importing one missing from the ``test`` extra."""
    project = _pyproject()["project"]
    runtime = {_requirement_name(s) for s in project["dependencies"]}
    test_extra = {_requirement_name(s) for s in project["optional-dependencies"]["test"]}
    distributions = importlib.metadata.packages_distributions()
    local = set(PACKAGES) | {"tests"} | {p.stem for p in (REPO / "tests").glob("*.py")}

    def undeclared(folder: Path, declared: set[str]) -> dict[str, list[str]]:
        missing = {}
        for name in sorted(_imported_top_names(folder) - local - set(sys.stdlib_module_names)):
            dists = {_canonical(d) for d in distributions.get(name, [])}
            if not dists & declared:
                missing[name] = sorted(dists) or ["<not installed>"]
        return missing

    for package in PACKAGES:
        assert undeclared(REPO / package, runtime) == {}, f"{package} imports undeclared"
    assert undeclared(REPO / "tests", runtime | test_extra) == {}
    dev = project["optional-dependencies"]["dev"]
    assert "stylestream[test]" in dev, "the dev extra must include everything tests need"


def test_itemcf_cosine_without_scikit_learn() -> None:
    """Catches a wrong column normalisation in the numpy/scipy cosine (it replaced
    scikit-learn's ``normalize``): values checked against the cosine computed by hand."""
    from models.baselines.itemcf import cosine_item_similarity, normalize_columns

    dense = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 1, 0]], dtype=np.float32)
    unit = normalize_columns(sparse.csr_matrix(dense)).toarray()
    assert unit.dtype == np.float32
    assert np.allclose(np.linalg.norm(unit[:, :3], axis=0), 1.0)
    assert np.all(unit[:, 3] == 0)  # an all-zero column stays zero, no division by zero
    sim = cosine_item_similarity(sparse.csr_matrix(dense)).toarray()
    norms = np.linalg.norm(dense, axis=0)
    expected = (dense.T @ dense) / np.outer(np.where(norms > 0, norms, 1),
                                            np.where(norms > 0, norms, 1))
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(sim, expected) and abs(sim[0, 1] - 0.5) < 1e-6
