"""The bridge between ``examples/`` and sphinx-gallery.

The examples are command-line scripts: ``python examples/NAME.py --out DIR`` writes its
picture with ``Figure.savefig`` (no pyplot, so nothing for sphinx-gallery's matplotlib scraper
to find), parses ``--out`` with ``__doc__`` as its description, and may end in
``raise SystemExit(main())``. sphinx-gallery runs a script's code with ``__doc__ = ""`` and lets
``SystemExit`` escape, and renders its docstring as reST, which needs a title. So ``conf.py``
stages a copy of each example for the gallery, with its code unchanged:

- the docstring gets its first line underlined as the page's title, and ``|x|`` outside
  literals becomes a literal (reST would read it as a substitution);
- a hidden block (``sphinx_gallery_start_ignore``: run, never shown nor downloaded) restores
  ``__doc__`` and renames ``__name__`` so that the script's ``if __name__ == "__main__"`` stays
  quiet, and one at the end calls ``main(["--out", <a temporary folder>, ...])`` and fails the
  build if it returns non-zero;
- :func:`scrape_pictures` moves the PNGs that the run wrote into the gallery.
"""

import ast
import re
import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst

# Extra arguments per example, as tests/test_examples.py passes them: digits times the best of
# 3 fits by default, and one fit says the same in a third of the time.
EXTRA_ARGS = {"digits": ["--repeats", "1"]}

HEADER = """\
Examples
========

Each example is a script in the repository's ``examples/`` folder, run while this site was
built: the output and pictures below are from that run. Run one yourself with
``python examples/NAME.py --out DIR``.
"""


def _escape_rst(text):
    """``|x|`` outside ````literals```` as a literal: reST would read it as a substitution."""
    parts = re.split(r"(``.+?``)", text, flags=re.S)
    return "".join(
        part if part.startswith("``") else re.sub(r"(\|[^|\s]+\|)", r"``\1``", part)
        for part in parts
    )


def stage_examples(examples, staged):
    """Write a gallery copy of every ``examples/*.py`` into ``staged`` (emptied first)."""
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    (staged / "GALLERY_HEADER.rst").write_text(HEADER)
    for script in sorted(examples.glob("*.py")):
        source = script.read_text()
        module = ast.parse(source)
        docstring = ast.get_docstring(module, clean=True)
        if docstring is None:
            raise ValueError(f"{script}: an example needs a docstring, its gallery page's text")
        title, _, body = docstring.partition("\n")
        title = _escape_rst(title.strip())
        code = source.splitlines(keepends=True)[module.body[0].end_lineno :]
        argv = repr(EXTRA_ARGS.get(script.stem, []))
        staged_source = (
            f'"""\n{title}\n{"=" * len(title)}\n{_escape_rst(body)}\n"""\n\n'
            "# sphinx_gallery_start_ignore\n"
            f"__doc__ = {docstring!r}\n"
            '__name__ = "gallery"\n'
            "# sphinx_gallery_end_ignore\n"
            f"{''.join(code).rstrip()}\n\n"
            "# sphinx_gallery_start_ignore\n"
            "import tempfile\n\n"
            '_gallery_out = tempfile.mkdtemp(prefix="fastmlp-gallery-")\n'
            f'_status = main(["--out", _gallery_out, *{argv}])\n'
            f'assert _status in (None, 0), "{script.name} exited with " + repr(_status)\n'
            "# sphinx_gallery_end_ignore\n"
        )
        (staged / script.name).write_text(staged_source)


def scrape_pictures(block, block_vars, gallery_conf):
    """sphinx-gallery image scraper: the PNGs that the example wrote to its ``--out`` folder."""
    out = block_vars["example_globals"].get("_gallery_out")
    if out is None:  # an earlier block; the run is in the last one
        return ""
    pictures = []
    for png, target in zip(
        sorted(Path(out).glob("*.png")), block_vars["image_path_iterator"], strict=False
    ):
        shutil.move(png, target)
        pictures.append(target)
    shutil.rmtree(out, ignore_errors=True)
    return figure_rst(pictures, gallery_conf["src_dir"])
