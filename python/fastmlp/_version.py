"""fastmlp's version, read from the installed distribution's metadata.

``version`` in pyproject.toml is the one source: the build backend writes it into the metadata
of every install (wheel, sdist, editable) and compiles it into the core modules, whose
``build_info()["version"]`` therefore says the same (tests/test_version.py holds them equal).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fastmlp")
except PackageNotFoundError:  # imported from a source tree that pip never installed
    __version__ = "0+unknown"
