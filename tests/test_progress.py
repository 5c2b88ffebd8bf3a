"""The optional progress bar, switched on through fastmlp.set_config / config_context."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastmlp

X = np.random.RandomState(0).normal(size=(60, 3))
y = (X[:, 0] > 0).astype(int)


def fit_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fastmlp.MLPClassifier((4,), max_iter=7, random_state=0).fit(X, y)


def test_off_by_default(capsys):
    assert fastmlp.get_config() == {"progress_bar": False}
    fit_quietly()
    assert capsys.readouterr().err == ""


def test_progress_bar_shows_epochs_loss_and_rate(capsys):
    with fastmlp.config_context(progress_bar=True):
        model = fit_quietly()
    err = capsys.readouterr().err
    assert "7/7" in err and "loss" in err and "samples" in err
    assert f"{model.loss_:.5g}" in err
    assert fastmlp.get_config()["progress_bar"] is False  # restored after the block


def test_plain_line_without_tqdm(capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    with fastmlp.config_context(progress_bar=True):
        fit_quietly()
    assert "epoch 7/7" in capsys.readouterr().err


def test_bad_setting_is_rejected():
    with pytest.raises(TypeError, match="progress_bar must be True or False"):
        fastmlp.set_config(progress_bar="yes")


def test_progress_moves_within_an_epoch(capsys, monkeypatch):
    """Long epochs show samples done, the loss so far and samples/s between their chunks. Here
    every minibatch is a chunk and every chunk redraws (in a real fit: chunks of about 0.1 s,
    redrawn at most every 0.5 s)."""
    import builtins

    from fastmlp import _epochs, _progress

    real_import = builtins.__import__

    def no_tqdm(name, *args, **kwargs):
        if name.startswith("tqdm"):
            raise ImportError("no tqdm here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    monkeypatch.setattr(_epochs, "CHUNK_SECONDS", 0.0)
    monkeypatch.setattr(_progress, "REDRAW_SECONDS", 0.0)
    with fastmlp.config_context(progress_bar=True), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fastmlp.MLPClassifier((4,), max_iter=2, batch_size=20, random_state=0).fit(X, y)
    err = capsys.readouterr().err
    # 60 samples in batches of 20: the first epoch is drawn after 20 and after 40 samples.
    assert "epoch 1/2  20/60 samples  loss" in err and "epoch 1/2  40/60 samples" in err
    assert "epoch 2/2  40/60 samples" in err and "epoch 2/2  loss" in err
