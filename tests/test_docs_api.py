"""The documentation's API reference (docs/api.rst) lists every public name, and only those.

Public: the names in ``fastmlp.__all__`` and, for each public submodule (``fastmlp.NAME``
without a leading underscore, found by walking the package, so that a new one is checked
too), its ``__all__`` or else the functions and classes it defines without a leading
underscore. This test reads api.rst's source, so it needs no Sphinx; ``.ci/docs`` builds the
site with warnings as errors, which fails on a listed name that does not import.
"""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import fastmlp

API_RST = Path(__file__).resolve().parents[1] / "docs" / "api.rst"


def public_modules():
    names = ["fastmlp"]
    for info in pkgutil.iter_modules(fastmlp.__path__):
        if not info.name.startswith("_"):
            names.append(f"fastmlp.{info.name}")
    return names


def public_names(module_name):
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        names = module.__all__
    else:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(value) or inspect.isclass(value))
            and value.__module__ == module_name
        ]
    return {f"{module_name}.{name}" for name in names}


def documented_names(text):
    """Fully qualified names in the autosummary lists and data directives of an .rst source."""
    names, module, in_autosummary = set(), "fastmlp", False
    for line in text.splitlines():
        if match := re.match(r"\.\. (?:currentmodule|automodule):: (\S+)", line):
            module, in_autosummary = match[1], False
        elif match := re.match(r"\.\. (?:data|autodata|py:data):: (\S+)", line):
            names.add(f"{module}.{match[1]}")
            in_autosummary = False
        elif line.startswith(".. autosummary::"):
            in_autosummary = True
        elif in_autosummary and (match := re.match(r"   ([\w.]+)$", line)):
            names.add(f"{module}.{match[1]}")
        elif in_autosummary and line and not line.startswith(" "):
            in_autosummary = False  # the list ended at the first unindented line
    return names


def test_every_public_name_is_documented_and_nothing_else():
    public = set().union(*(public_names(m) for m in public_modules()))
    documented = documented_names(API_RST.read_text())
    assert public - documented == set(), "public but missing from docs/api.rst"
    assert documented - public == set(), "in docs/api.rst but not public"


@pytest.mark.parametrize("name", sorted(set().union(*(public_names(m) for m in public_modules()))))
def test_public_callables_have_numpydoc_docstrings(name):
    module_name, _, attribute = name.rpartition(".")
    value = getattr(importlib.import_module(module_name), attribute)
    if not callable(value):
        return  # constants and __version__: described in api.rst
    doc = inspect.getdoc(value)
    assert doc and doc.strip(), f"{name} has no docstring"
    try:
        parameters = inspect.signature(value).parameters
    except ValueError:  # a builtin without a signature
        return
    named = [p for p in parameters if p not in ("self", "args", "kwargs", "settings")]
    if named:
        assert re.search(r"^Parameters\n-+$", doc, re.M), f"{name}: no Parameters section"


def test_documented_parser_reads_autosummary_lists():
    text = (
        ".. currentmodule:: fastmlp\n\n.. autosummary::\n   :toctree: generated/\n\n   MLP\n"
        "   load\n\nSome text.\n\n   indented text\n\n.. data:: __version__\n\n"
        ".. currentmodule:: fastmlp.onnx\n\n.. autosummary::\n\n   to_onnx\n"
    )
    assert documented_names(text) == {
        "fastmlp.MLP",
        "fastmlp.load",
        "fastmlp.__version__",
        "fastmlp.onnx.to_onnx",
    }
