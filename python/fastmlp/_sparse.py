"""Sparse X as the core takes it: CSR, never densified.

Any SciPy sparse matrix or array (CSR, CSC, COO, ...) becomes CSR once, of the model's dtype,
with int32 or int64 indices; a CSR matrix that already is all that is used as it is, without a
copy and without being modified. Duplicate indices add up and explicit zeros add nothing in
every product the core computes, and rows need not be sorted, so nothing is canonicalised.

The compiled CPU module takes the matrix as the tuple ``(data, indices, indptr, n_cols)``
(:func:`core_input`); its binding checks every index before the core reads it.
"""

import numpy as np
import scipy.sparse

__all__ = ["as_csr", "core_input", "is_sparse", "n_rows", "prepare"]


def is_sparse(X):
    return scipy.sparse.issparse(X)


def n_rows(X):
    """The number of rows of X, dense or sparse (``len`` is ambiguous for sparse matrices)."""
    return X.shape[0]


def as_csr(X, dtype):
    """X (any SciPy sparse format) as a CSR matrix of ``dtype`` whose data, indices and indptr
    are C-contiguous, with indices and indptr of one integer type (int32 or int64).

    Copies only what is not so already; never modifies X and never densifies it.
    """
    dtype = np.dtype(dtype)
    if X.format != "csr":
        X = X.tocsr()  # CSC, COO, ...: one conversion (COO's duplicates are summed by SciPy)
    index_dtype = np.int64 if np.int64 in (X.indices.dtype, X.indptr.dtype) else np.int32
    if index_dtype == np.int32 and (
        X.indices.dtype != np.int32 or X.indptr.dtype != np.int32
    ):  # other integer types (uint32, int16, ...): widen to int64 when in doubt
        index_dtype = np.int64
    data = np.ascontiguousarray(X.data, dtype)
    indices = np.ascontiguousarray(X.indices, index_dtype)
    indptr = np.ascontiguousarray(X.indptr, index_dtype)
    if data is X.data and indices is X.indices and indptr is X.indptr:
        return X
    return scipy.sparse.csr_matrix((data, indices, indptr), shape=X.shape, copy=False)


def prepare(X, dtype):
    """X as the estimators hand it to a backend: CSR (see :func:`as_csr`) when sparse, else a
    C-contiguous array of ``dtype``."""
    if is_sparse(X):
        return as_csr(X, dtype)
    return np.ascontiguousarray(X, dtype)


def core_input(X):
    """What a compiled module takes for X: the array itself, or for a CSR matrix the tuple
    ``(data, indices, indptr, n_cols)`` (other sparse formats are converted first)."""
    if not is_sparse(X):
        return X
    if X.format != "csr":
        X = as_csr(X, X.dtype if X.dtype in (np.float32, np.float64) else np.float64)
    return (X.data, X.indices, X.indptr, int(X.shape[1]))
