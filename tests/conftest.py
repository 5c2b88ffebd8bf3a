"""Shared pytest fixtures."""

import pytest


@pytest.fixture(params=["reference", "core"])
def mlp_class(request):
    """The low-level network class under test: the NumPy reference or the C++ core."""
    if request.param == "reference":
        from fastmlp.reference import MLP

        return MLP
    # Imported here so that the reference tests run even while the core is not built.
    import fastmlp

    return fastmlp.MLP
