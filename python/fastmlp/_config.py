"""Library-wide settings that are not estimator parameters.

The estimators keep exactly scikit-learn's parameters (so that ``get_params``, ``clone`` and
``to_sklearn`` stay drop-in); conveniences such as a progress bar are switched on here instead,
globally with :func:`set_config` or for a block with :func:`config_context`.
"""

import contextlib

_config = {"progress_bar": False}


def get_config():
    """The current settings, as a new dict: ``{"progress_bar": bool}``."""
    return dict(_config)


def set_config(progress_bar=None):
    """Change settings; ``None`` leaves a setting as it is.

    Parameters
    ----------
    progress_bar : bool, default=None
        Show a progress bar (``tqdm`` when installed, else a line on stderr) with the loss and
        samples/s during ``fit`` and ``partial_fit`` of the stochastic solvers.
    """
    if progress_bar is not None:
        if not isinstance(progress_bar, bool):
            raise TypeError(f"progress_bar must be True or False, got {progress_bar!r}")
        _config["progress_bar"] = progress_bar


@contextlib.contextmanager
def config_context(**settings):
    """Apply :func:`set_config` settings inside a ``with`` block, then restore the old ones.

    Examples
    --------
    >>> import fastmlp
    >>> with fastmlp.config_context(progress_bar=True):
    ...     pass  # fits in here show a progress bar
    """
    saved = get_config()
    set_config(**settings)
    try:
        yield
    finally:
        _config.update(saved)
