"""Saving never loses the model already on disk (issue #11).

A save writes a temporary file beside the target and renames it over the target only once it is
complete and fsynced. Each test makes a save fail part-way (an injected error, a file-size limit,
a full tmpfs, SIGINT, a concurrent writer) and checks that the old model still loads, equal to
what it was, and that no temporary file is left behind.
"""

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp.__main__ import main

X = np.random.RandomState(0).uniform(size=(30, 4))
Y = X @ np.arange(1.0, 5.0)

# Run in the child processes: a fitted model whose layer has `hidden` units, so that its file
# has a chosen size (about 48 * hidden bytes) without fitting a large network.
BIG_MODEL = textwrap.dedent(
    """
    import warnings
    import numpy as np
    from fastmlp import MLPRegressor

    def big_model(hidden, seed=0):
        rng = np.random.RandomState(seed)
        X = rng.uniform(size=(30, 4))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=2).fit(X, X[:, 0])
        est.set_params(hidden_layer_sizes=(hidden,))
        est.coefs_ = [rng.standard_normal((4, hidden)), rng.standard_normal((hidden, 1))]
        est.intercepts_ = [rng.standard_normal(hidden), rng.standard_normal(1)]
        return est
    """
)


def small_model(seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=seed).fit(X, Y)


def assert_same_model(loaded, expected):
    loaded_params = loaded.coefs_ + loaded.intercepts_
    for a, b in zip(loaded_params, expected.coefs_ + expected.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


def leftovers(folder, name):
    return sorted(f for f in os.listdir(folder) if f != name)


def run_child(code, *args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", BIG_MODEL + textwrap.dedent(code), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_an_error_in_the_middle_of_the_write_keeps_the_old_model(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = small_model(0)
    old.save(path)

    def savez_then_disk_full(file, **arrays):
        file.write(b"PK\x03\x04 half of an archive")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", savez_then_disk_full)
    with pytest.raises(OSError) as info:
        small_model(1).save(path)
    assert info.value.errno == errno.ENOSPC
    assert str(path) in str(info.value)  # the write's OSError named no file: the save adds it
    monkeypatch.undo()
    assert_same_model(fastmlp.load(path), old)
    assert leftovers(tmp_path, "model.npz") == []


def test_a_failed_rename_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "model.npz"  # a directory where the file should go: the rename fails
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        small_model().save(folder)
    assert info.value.filename == str(folder)
    assert os.listdir(tmp_path) == ["model.npz"] and os.listdir(folder) == []


@pytest.mark.slow
def test_file_size_limit_gives_efbig_and_keeps_the_old_model(tmp_path):
    """A really full disk without privileges: RLIMIT_FSIZE makes the kernel refuse the write
    (EFBIG, once SIGXFSZ is ignored) part-way through the larger model."""
    pytest.importorskip("resource")  # POSIX only; the child process uses it
    path = tmp_path / "model.npz"
    old = small_model(0)
    old.save(path)
    limit = 256 * 1024
    child = run_child(
        """
        import errno, resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        model = big_model(20000)  # about 1 MB: four times the limit
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), int(sys.argv[2])))
        try:
            model.save(sys.argv[1])
        except OSError as exc:
            print(exc.errno == errno.EFBIG, exc)
        """,
        path,
        limit,
    )
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.startswith("True ") and str(path) in out, out
    assert os.path.getsize(path) < limit
    assert_same_model(fastmlp.load(path), old)
    assert leftovers(tmp_path, "model.npz") == []


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs, where this process may mount one (root, with CAP_SYS_ADMIN)."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or 'mount failed'}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.slow
def test_a_full_tmpfs_keeps_the_old_model(small_tmpfs):
    path = small_tmpfs / "model.npz"
    old = small_model(0)
    old.save(path)
    child = run_child(
        """
        import sys
        big_model(60000).save(sys.argv[1])  # about 3 MB on a 2 MB filesystem
        """,
        path,
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode != 0
    assert "No space left on device" in err and str(path) in err, err
    assert_same_model(fastmlp.load(path), old)
    assert leftovers(small_tmpfs, "model.npz") == []


@pytest.mark.slow
def test_concurrent_saves_always_leave_one_complete_model(tmp_path):
    path = tmp_path / "model.npz"
    models = [small_model(seed) for seed in (1, 2)]
    sources = []
    for seed, model in enumerate(models):
        sources.append(tmp_path / f"source_{seed}.npz")
        model.save(sources[-1])
    first = small_model(0)
    first.save(path)
    writer = """
        import sys
        import fastmlp
        model = fastmlp.load(sys.argv[1])
        for _ in range(40):
            model.save(sys.argv[2])
        """
    children = [run_child(writer, source, path) for source in sources]
    loads = 0
    while any(child.poll() is None for child in children) or loads == 0:
        loaded = fastmlp.load(path)  # never a mix, never a truncated file
        assert any(np.array_equal(loaded.coefs_[0], m.coefs_[0]) for m in [first, *models])
        loads += 1
    for child in children:
        assert child.wait(timeout=120) == 0, child.stderr.read()
    final = fastmlp.load(path)
    assert any(np.array_equal(final.coefs_[0], m.coefs_[0]) for m in models)
    assert leftovers(tmp_path, "model.npz") == ["source_0.npz", "source_1.npz"]


@pytest.mark.slow
def test_sigint_during_the_save_of_a_large_model_keeps_the_old_file(tmp_path):
    path = tmp_path / "model.npz"
    old = small_model(0)
    old.save(path)
    child = run_child(
        """
        import sys
        # 580 MB: written for long enough that the signal lands mid-write even on a busy
        # machine (190 MB once finished first).
        model = big_model(12_000_000)
        print("ready", flush=True)
        try:
            model.save(sys.argv[1])
            print("saved")
        except KeyboardInterrupt:
            print("interrupted")
        """,
        path,
    )
    assert child.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 60
    while not any(f.endswith(".tmp") for f in os.listdir(tmp_path)):
        assert time.monotonic() < deadline and child.poll() is None, "the save never started"
        time.sleep(0.001)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    assert out.strip() == "interrupted", "the save finished before the signal came; " + out
    assert_same_model(fastmlp.load(path), old)
    assert leftovers(tmp_path, "model.npz") == []


def test_new_files_get_the_umask_mode_and_existing_files_keep_theirs(tmp_path):
    path = tmp_path / "model.npz"
    old_umask = os.umask(0o027)
    try:
        small_model().save(path)
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    os.chmod(path, 0o604)
    small_model(1).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o604


def test_a_symlinked_target_is_written_through_and_the_link_kept(tmp_path):
    real = tmp_path / "models" / "real.npz"
    real.parent.mkdir()
    small_model(0).save(real)
    link = tmp_path / "current.npz"
    link.symlink_to(real)
    new = small_model(1)
    new.save(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert_same_model(fastmlp.load(real), new)
    assert leftovers(real.parent, "real.npz") == []


def test_cli_predict_out_is_written_atomically_and_errors_in_one_line(tmp_path, capsys):
    data = tmp_path / "data.csv"
    labels = np.where(X[:, 0] > 0.5, "hi", "lo")
    with open(data, "w") as file:
        file.write("a,b,c,d,label\n")
        for row, label in zip(X, labels, strict=True):
            file.write(",".join(map(str, row)) + f",{label}\n")
    model = tmp_path / "model.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        args = ["train", str(data), "--target", "label", "--max-iter", "5", "--out", str(model)]
        assert main(args) == 0
    out = tmp_path / "predictions.csv"
    out.write_text("old predictions\n")
    os.chmod(out, 0o640)
    assert main(["predict", str(model), str(data), "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == "prediction"
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    capsys.readouterr()

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for command in (
        ["predict", str(model), str(data), "--out", str(blocked)],
        ["train", str(data), "--target", "label", "--max-iter", "1", "--out", str(blocked)],
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            assert main(command) == 1
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error" in line]
        assert "Traceback" not in err and len(errors) == 1, err
        assert errors[0].endswith(f"error: cannot write {blocked}: Is a directory"), err
    assert os.listdir(blocked) == [] and sorted(os.listdir(tmp_path)) == [
        "blocked",
        "data.csv",
        "model.npz",
        "predictions.csv",
    ]


def test_classifier_saves_through_the_same_path(tmp_path, monkeypatch):
    path = tmp_path / "clf.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        old = MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
        old.fit(X, X[:, 0] > 0.5)
    old.save(path)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EIO, "EIO")))
    with pytest.raises(OSError, match="clf.npz"):
        old.save(path)
    monkeypatch.undo()
    assert_same_model(fastmlp.load(path), old)
    assert leftovers(tmp_path, "clf.npz") == []
