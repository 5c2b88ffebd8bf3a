"""One version: pyproject.toml's ``version``, and every place that reports it.

``fastmlp.__version__`` comes from the installed metadata, ``build_info()["version"]`` was
compiled in from the same pyproject.toml by the build backend, and CHANGELOG.md's newest entry
names it. .ci/release checks the same agreement in the installed wheel and sdist; this test
checks the install that pytest runs against (a regular or an editable one).
"""

import importlib.metadata
import re
from pathlib import Path

import pytest

import fastmlp

ROOT = Path(__file__).resolve().parents[1]


def pyproject_version():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads TOML")
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_one_version_everywhere():
    versions = {
        "fastmlp.__version__": fastmlp.__version__,
        "build_info()['version']": fastmlp.build_info()["version"],
        "installed metadata": importlib.metadata.version("fastmlp"),
        "pyproject.toml": pyproject_version(),
    }
    assert len(set(versions.values())) == 1, versions


def test_version_is_pep440_and_not_a_placeholder():
    # X.Y.Z with an optional pre-release, post-release or dev part.
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", fastmlp.__version__)


def test_changelog_names_the_version_first():
    entries = re.findall(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert entries and entries[0] == pyproject_version(), entries[:1]
