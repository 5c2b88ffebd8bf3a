"""The optional CUDA backend: whether it was built, whether a GPU is present, and ``device``.

``fastmlp._cuda_core`` exists only in a build made with the CMake option ``FASTMLP_CUDA=ON``.
It imports on any machine (the CUDA runtime is linked statically) and reports zero devices where
there is no driver or no GPU. Every ``device`` value that the estimators and ``fastmlp.MLP`` take
goes through :func:`resolve_device`, which turns it into a device index or raises an error that
says what to do.
"""

import importlib
import re

from sklearn.utils._param_validation import StrOptions

BUILD_COMMAND = "pip install . -C cmake.define.FASTMLP_CUDA=ON"
_DEVICE_PATTERN = re.compile(r"cuda(?::(\d+))?")


def _import_cuda_core():
    """The compiled CUDA module and, where it could not be imported, why (None when built)."""
    try:
        return importlib.import_module("fastmlp._cuda_core"), None
    except ImportError as error:
        if isinstance(error, ModuleNotFoundError) and error.name == "fastmlp._cuda_core":
            return None, "fastmlp was built without CUDA"
        # Built, but it cannot load here (a broken or foreign build): the CPU still works.
        return None, f"fastmlp._cuda_core did not import: {error}"


# Tests replace these two to act out a build without CUDA.
cuda_core, import_problem = _import_cuda_core()


def cuda_available():
    """Whether fastmlp can train on a GPU here: built with CUDA and a CUDA device present.

    Returns
    -------
    available : bool
        True when fastmlp was built with ``FASTMLP_CUDA=ON`` and the CUDA driver reports at
        least one device; ``device="cuda"`` then works.
    """
    return cuda_core is not None and cuda_core.device_count() > 0


def build_info():
    """The ``"cuda"`` entry of ``fastmlp.build_info()``: what was built and which GPUs are here."""
    if cuda_core is None:
        return {"built": False, "reason": import_problem}
    info = dict(cuda_core.build_info())
    count = cuda_core.device_count()
    devices = []
    for index in range(count):
        properties = dict(cuda_core.device_properties(index))
        properties["compute_capability"] = tuple(properties["compute_capability"])
        devices.append(properties)
    return {
        "built": True,
        "runtime": info.get("cuda_runtime"),
        "architectures": list(info.get("architectures", [])),
        "fused_max_width": info.get("fused_max_width"),
        "devices": devices,
        "device_status": cuda_core.device_status() if count == 0 else "",
    }


def parse_device(device):
    """The device index of a well-formed ``device`` value: None for "cpu", N for "cuda:N".

    Only the spelling is checked here, not whether that device exists.

    Raises
    ------
    ValueError
        If ``device`` is not "cpu", "cuda" or "cuda:<index>".
    """
    if isinstance(device, str):
        if device == "cpu":
            return None
        match = _DEVICE_PATTERN.fullmatch(device)
        if match:
            return int(match.group(1) or 0)
    raise ValueError(
        f"device must be 'cpu', 'cuda' or 'cuda:<index>' (e.g. 'cuda:0'), got {device!r}"
    )


def resolve_device(device):
    """The CUDA device index to compute on, or None for the CPU.

    Raises
    ------
    ValueError
        If ``device`` is misspelled.
    RuntimeError
        If ``device`` asks for a GPU that this build or this machine does not have: the message
        says how to build with CUDA, why no device is usable, or how many there are.
    """
    index = parse_device(device)
    if index is None:
        return None
    fallback = "Use device='cpu' to compute on the CPU."
    if cuda_core is None:
        raise RuntimeError(
            f"device={device!r} needs fastmlp's CUDA backend, but {import_problem}. Build it "
            f"with the CUDA toolkit (nvcc) installed: {BUILD_COMMAND}. {fallback}"
        )
    count = cuda_core.device_count()
    if count == 0:
        status = cuda_core.device_status() or "the CUDA driver reports no device"
        raise RuntimeError(
            f"device={device!r}: no CUDA device is usable here ({status}). {fallback}"
        )
    if index >= count:
        raise RuntimeError(
            f"device={device!r}: there is no CUDA device {index}; this machine has {count} "
            f"(indices 0 to {count - 1})"
        )
    return index


def module():
    """The compiled CUDA module; call only after :func:`resolve_device` returned an index."""
    assert cuda_core is not None, "resolve_device() checks that the module is built"
    return cuda_core


class DeviceOptions(StrOptions):
    """scikit-learn parameter constraint: 'cpu', 'cuda' or 'cuda:<index>'.

    A ``StrOptions`` so that scikit-learn's validation accepts it and its estimator checks can
    draw valid ('cpu', 'cuda') and invalid values from it; it also accepts 'cuda:<index>'.
    """

    def __init__(self):
        super().__init__({"cpu", "cuda"})

    def is_satisfied_by(self, val):
        try:
            parse_device(val)
        except ValueError:
            return False
        return True

    def __str__(self):
        return "'cpu', 'cuda' or 'cuda:<index>'"
