"""modelci's public face: ``__all__`` equals the table of docs/api.md, every name is the one the
module the table names holds, and ``import modelci`` imports none of them until one is used."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys

import pytest

import modelci
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.unit

API_PAGE = REPO_ROOT / "docs" / "api.md"
ROW = re.compile(r"^\| `([^`]+)` \| `([^`]+)` \|")


def documented() -> dict[str, str]:
    """name -> defining module, from the table between the api markers of docs/api.md."""
    text = API_PAGE.read_text(encoding="utf-8")
    table = text.split("<!-- api:begin -->", 1)[1].split("<!-- api:end -->", 1)[0]
    rows = [ROW.match(line) for line in table.splitlines() if line.startswith("| `")]
    assert all(rows), "every row starts with `name` | `module`"
    return {row.group(1): row.group(2) for row in rows if row}


def test_all_equals_the_docs_page() -> None:
    assert sorted(documented()) == sorted(modelci.__all__)
    assert sorted(modelci.__all__) == sorted(["__version__", *modelci._PUBLIC])


@pytest.mark.parametrize("name", modelci.__all__)
def test_each_name_resolves_to_its_documented_module(name: str) -> None:
    value = getattr(modelci, name)
    module = documented()[name]
    if name == "__version__":
        assert value == importlib.metadata.version("modelci")
    else:
        assert getattr(importlib.import_module(module), name) is value


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = modelci.nothing  # type: ignore[attr-defined]
    assert set(modelci.__all__) <= set(dir(modelci))


def test_importing_the_package_loads_no_submodule() -> None:
    code = (
        "import sys, modelci\n"
        "print(sorted(m for m in sys.modules if m.startswith(('modelci.', 'pandas', 'pydantic'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_readme_links_the_api_page() -> None:
    assert "(docs/api.md)" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
