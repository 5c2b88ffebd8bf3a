"""Arrays as the core needs them: C-contiguous, of the model's dtype, and aligned.

The core's results depend, in their last bits, on where the arrays it writes lie in memory (its
vectorised loops treat an unaligned head apart), so every array that the core updates is
allocated at one fixed alignment: two identical fits then give identical models.
"""

import numpy as np
import scipy.sparse

from fastmlp import _sparse

ALIGNMENT = 64  # bytes


def contiguous(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``, copied only where needed; a sparse matrix
    stays sparse (CSR of ``dtype``, see fastmlp._sparse): X is never densified."""
    if scipy.sparse.issparse(a):
        return _sparse.as_csr(a, dtype)
    return np.ascontiguousarray(a, dtype)


def aligned_empty(shape, dtype, alignment=ALIGNMENT):
    """An uninitialised C-contiguous array whose data starts at a multiple of alignment bytes.

    Arrays that NumPy places anywhere would make two identical fits differ in the last bits,
    which L-BFGS can amplify into a different model (see the module docstring).
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape))
    buffer = np.empty(size * dtype.itemsize + alignment, dtype=np.uint8)
    start = -buffer.ctypes.data % alignment
    return buffer[start : start + size * dtype.itemsize].view(dtype).reshape(shape)


def aligned_copy(a, dtype):
    out = aligned_empty(np.shape(a), dtype)
    out[...] = a
    return out


def is_aligned(a):
    return a.ctypes.data % ALIGNMENT == 0


def all_finite(arrays):
    return all(np.isfinite(a).all() for a in arrays)


def dense(X, dtype):
    """X as the core takes it: a C-contiguous array of dtype (no copy when it already is one),
    or, for sparse X, CSR of dtype: the core multiplies sparse X directly (issue #15), so even
    this historically named helper never densifies."""
    return contiguous(X, dtype)
