"""The suite's tiers: each folder under ``tests/`` has one marker, and the fast tiers (what
``make check`` runs) never pull an expensive session fixture.

``tests/conftest.py`` calls :func:`tier_problem` for every collected test and stops the run, before
any test starts, naming each test whose marker does not match its folder: a drift between the two
would silently move a test in or out of ``pytest -m "unit or data"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import PurePath

# One marker per folder, spelled as the folder.
TIERS = ("unit", "data", "model", "integration", "workflows")
# What ``make check`` runs: no dvc repro, no server process, no container, no package build.
FAST_TIERS = ("unit", "data")
# Session fixtures that reproduce a pipeline, build a distribution, start servers or build an
# image. A test that needs one belongs in model/, integration/ or workflows/.
SLOW_FIXTURES = frozenset(
    {
        "pipeline_repo",  # dvc repro of this repository's pipeline
        "modelci_dists",  # uv build of the wheel and sdist
        "german_adopter",  # modelci init from the wheel and dvc repro of an adopter repository
        "mlflow_backend",  # PostgreSQL + S3 (moto) + mlflow server
        "serving_image",  # podman build of the serving image (its default, onnx variant)
        "image_context",  # what both variants of the serving image are built from
        "model_repo",  # the workflows' model repository, reproduced on three branches
    }
)


# Session fixtures two xdist workers must not build at once, and the group of their users, which
# ``--dist loadgroup`` runs on one worker: the serving image (one podman storage, one image tag,
# one debootstrapped base). Both variants of the image are built from ``image_context``.
SERIAL_FIXTURES = {"serving_image": "podman", "image_context": "podman"}


def xdist_group(nodeid: str, scopes: Mapping[str, str]) -> str | None:
    """The xdist group of a test, given the scope of each fixture it uses: the tests of one group
    run on one worker. A test using a module (or class) fixture stays with its module, so the
    fixture (an act run, a server) is made once, not once per worker; the rest are free."""
    for fixture, group in SERIAL_FIXTURES.items():
        if fixture in scopes:
            return group
    if any(scope in ("module", "class", "package") for scope in scopes.values()):
        return nodeid.split("::")[0]
    return None


def tier_problem(path: PurePath, markers: Iterable[str], fixtures: Iterable[str]) -> str | None:
    """Why a test at ``path`` (relative to ``tests/``) with these markers and this fixture
    closure is in the wrong tier, or None when it is where it belongs."""
    if len(path.parts) < 2 or path.parts[0] not in TIERS:
        return None
    folder = path.parts[0]
    tiers = sorted(set(markers) & set(TIERS))
    if tiers != [folder]:
        found = f"marked {', '.join(tiers)}" if tiers else "has no tier marker"
        return f"{found}, but tests/{folder}/ holds {folder} tests only (mark it {folder})"
    if folder in FAST_TIERS:
        slow = sorted(set(fixtures) & SLOW_FIXTURES)
        if slow:
            return (
                f"a {folder} test uses the slow session fixture {', '.join(slow)}: "
                "move it to tests/integration/ (or tests/model/)"
            )
    return None
