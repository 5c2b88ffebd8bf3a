"""Write a file so that a failure never loses what was there: ``atomic_write(path)``.

Every file fastmlp writes (saved models, the CLI's prediction files, the demo's and the
benchmarks' outputs) goes through here. The data go to a temporary file in the target's own
directory (so that the final rename stays on one filesystem and is atomic), are flushed and
fsynced, and the temporary file is then renamed over the target, and the directory fsynced so
that the rename itself survives a crash. Until that rename the target is untouched: a full
disk, a file-size limit, Ctrl-C or an exception in the writer removes the temporary file and
re-raises. Two processes writing the same path each write their own temporary file; the last
rename wins and readers only ever see one complete file.

A process killed outright (SIGKILL, power loss) cannot clean up: it may leave a hidden
``.NAME.*.tmp`` file beside the target, but the target itself is still whole.
"""

import contextlib
import os
import tempfile


def _umask():
    """The process's umask, read without changing it (``os.umask`` can only swap it, which
    races with other threads creating files)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the swap, at once undone
    os.umask(mask)
    return mask


def _fsync_directory(directory):
    # Makes the rename durable; a platform that cannot open a directory (Windows) skips it.
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory: the rename has happened
        pass
    finally:
        os.close(fd)


def _name_path(exc, path, temporary=None):
    # The OSError of a write (ENOSPC, EFBIG) names no file, and that of the rename names the
    # temporary one: the user needs the path they gave.
    if isinstance(exc, OSError) and exc.filename in (None, temporary):
        exc.filename = os.fspath(path)
        exc.filename2 = None


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_kwargs):
    """Open a temporary file to write ``path``'s new content into, and put it in place on
    success.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. A symbolic link is followed: the file it points to is replaced and the
        link kept.
    mode : {"wb", "w"}
        Binary or text.
    **open_kwargs
        Passed to :func:`open` (``encoding``, ``newline``).

    Yields
    ------
    file object
        Write the whole new content to it.

    Raises
    ------
    OSError
        Whatever the filesystem raised (errno kept), with ``path`` as its filename; the target is
        then as it was and no temporary file is left.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes whole files: mode 'wb' or 'w', not {mode!r}")
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    try:
        mode_bits = os.stat(target).st_mode & 0o7777  # an existing file keeps its mode
    except FileNotFoundError:
        mode_bits = 0o666 & ~_umask()  # what a plain open() would give a new file
    except OSError as exc:
        _name_path(exc, path)
        raise
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        _name_path(exc, path)
        raise
    try:
        with os.fdopen(fd, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode_bits)  # mkstemp made it 0600
        os.replace(temporary, target)
    except BaseException as exc:  # KeyboardInterrupt included: never leave a partial file
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        _name_path(exc, path, temporary)
        raise
    _fsync_directory(directory)


def save_figure(figure, path, **savefig_kwargs):
    """``figure.savefig(path)`` through :func:`atomic_write`.

    savefig infers the format from a file name but not from a file object: it is taken here from
    ``path``'s extension, and a path without one gets matplotlib's default format appended, as
    savefig does. Returns the path written.
    """
    from matplotlib import rcParams

    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lstrip(".").lower()
    if not extension:
        extension = rcParams["savefig.format"]
        path = f"{path}.{extension}"
    with atomic_write(path) as file:
        figure.savefig(file, format=extension, **savefig_kwargs)
    return path
