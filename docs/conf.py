"""Sphinx configuration of fastmlp's documentation site.

Build it with ``pip install ".[docs]"`` then ``sphinx-build -W docs docs/_build/html``
(``.ci/docs`` does that with warnings as errors). Neither building nor reading it needs the
network: the theme is Sphinx's own alabaster, MathJax is copied into the site, and no
intersphinx inventory is fetched. It documents the installed fastmlp.
"""

import re
import sys
from pathlib import Path

import fastmlp

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))  # for _gallery, named by string below (config must pickle)

import _gallery  # noqa: E402

project = "fastmlp"
author = "the fastmlp developers"
copyright = "the fastmlp developers"  # noqa: A001 (Sphinx's name)
release = version = fastmlp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax copied into the site: formulas render offline too
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
exclude_patterns = ["_build", "gallery_src", "README.md"]
html_theme = "alabaster"
html_theme_options = {
    "description": "Fast multilayer perceptrons",
    "fixed_sidebar": True,
    "page_width": "1160px",  # room for 99-character lines of code
    "body_max_width": "none",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}

# API reference: api.rst lists every public name (tests/test_docs_api.py checks it);
# autosummary writes one page per name into generated/, a class with all its members
# (_templates/autosummary/class.rst), less those that scikit-learn documents (see setup).
templates_path = ["_templates"]
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc sections carry the types
# numpydoc would list every class member again beneath autosummary's own table.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# The gallery: staged copies of examples/ (see _gallery.py), run at every build.
_gallery.stage_examples(DOCS.parent / "examples", DOCS / "gallery_src")
sphinx_gallery_conf = {
    "examples_dirs": "gallery_src",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, not only plot_*.py
    "image_scrapers": ("_gallery.scrape_pictures",),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "within_subsection_order": "FileNameSortKey",
}


def _skip_inherited_from_elsewhere(app, what, name, obj, skip, options):
    """Skip class members defined outside fastmlp: get_params, score, set_*_request...

    scikit-learn documents them, and their docstrings point at its own pages, which would be
    broken references here; api.rst says where they come from. fastmlp.MLP keeps what it
    inherits from fastmlp.reference.MLP.
    """
    if what != "class":
        return None
    module = getattr(getattr(obj, "fget", obj), "__module__", None)
    return True if module and not module.startswith("fastmlp") else None


# In numpydoc types, a fitted attribute's name ends in "_" ("of shape (n_features_in_,)"),
# which reST reads as a reference to a link target: escape that "_".
_TYPED_LINE = re.compile(r"^(\s*[\w*\\][\w*\\, ]* : )(.+)$")
_TRAILING_UNDERSCORE = re.compile(r"\b([A-Za-z]\w*?)_(?![\w`])")


def _escape_types(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if match := _TYPED_LINE.match(line):
            lines[i] = match[1] + _TRAILING_UNDERSCORE.sub(r"\1\\_", match[2])


def setup(app):
    app.connect("autodoc-skip-member", _skip_inherited_from_elsewhere)
    app.connect("autodoc-process-docstring", _escape_types, priority=400)  # before numpydoc
