"""CSV input and output of the command line (``python -m fastmlp train`` and ``predict``), and
sparse input: svmlight/libsvm files and SciPy ``.npz`` matrices, kept sparse.

Only the standard library's ``csv`` module and NumPy: pandas is no dependency. A table is a
header row of column names followed by rows of values, comma-separated, UTF-8 (a byte-order
mark is allowed). Every problem is raised as :class:`DataError` with a one-line message that
names the file, and the line and column where there is one.
"""

import csv
import math
import os

import numpy as np


class DataError(ValueError):
    """Input the command line cannot use; its message is meant for the user as it is."""


class Table:
    """A CSV file's column names and its rows of strings.

    Attributes
    ----------
    path : str
    columns : list of str
        The header's names, stripped of surrounding spaces.
    rows : list of list of str
        The data rows (blank lines skipped), each of ``len(columns)`` stripped strings.
    line_numbers : list of int
        Each row's line number in the file, for messages.
    """

    def __init__(self, path, columns, rows, line_numbers):
        self.path, self.columns, self.rows, self.line_numbers = path, columns, rows, line_numbers

    def column(self, name):
        """The strings of column ``name``, of shape (n_rows,)."""
        index = self.columns.index(name)
        return [row[index] for row in self.rows]

    def numeric(self, names):
        """Columns ``names`` as floats: ndarray of shape (n_rows, len(names)).

        Raises DataError at the first value that is not a finite number (empty, NaN, text).
        """
        indices = [self.columns.index(name) for name in names]
        strings = [[row[i] for i in indices] for row in self.rows]
        try:  # fast path: NumPy parses the whole block
            values = np.array(strings, dtype=np.float64).reshape(len(self.rows), len(names))
            if np.all(np.isfinite(values)):
                return values
        except ValueError:
            pass
        # Value by value, to say where the problem is (or to accept what only float() reads).
        return np.array(
            [
                [
                    _number(text, f"{self.path}, line {line}, column {name!r}")
                    for name, text in zip(names, row, strict=True)
                ]
                for row, line in zip(strings, self.line_numbers, strict=True)
            ],
            dtype=np.float64,
        ).reshape(len(self.rows), len(names))


def _number(text, where):
    if text == "":
        raise DataError(f"{where}: empty value (missing values are not supported)")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(f"{where}: {text!r} is not a finite number")
    return value


def read_table(path):
    """Read the CSV file at ``path``.

    Returns
    -------
    Table

    Raises
    ------
    DataError
        If the file cannot be read, is empty, has no data rows, has a blank or repeated column
        name, or a row with another number of fields than the header.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty: expected a header row of column names")
            rows, line_numbers = [], []
            for row in reader:
                if not row or all(not field.strip() for field in row):
                    continue  # blank line
                if len(row) != len(header):
                    raise DataError(
                        f"{path}, line {reader.line_num}: {len(row)} fields, but "
                        f"the header has {len(header)}"
                    )
                rows.append([field.strip() for field in row])
                line_numbers.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory, not a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path} is not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not valid CSV: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if all(not name.strip() for name in header):
        raise DataError(f"{path} is empty: expected a header row of column names")
    columns = [name.strip() for name in header]
    if "" in columns:
        raise DataError(f"{path}: column {columns.index('') + 1} of the header has no name")
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: repeated column names {repeated}")
    if not rows:
        raise DataError(f"{path} has a header but no data rows")
    return Table(path, columns, rows, line_numbers)


def parse_hidden(text):
    """``"128,64"`` -> ``(128, 64)``: the sizes of the hidden layers.

    Raises DataError unless ``text`` is one or more comma-separated positive integers.
    """
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isascii() and part.isdigit() and int(part) > 0 for part in parts):
        raise DataError(
            f"--hidden must be comma-separated positive integers such as 128,64; got {text!r}"
        )
    return tuple(int(part) for part in parts)


def write_columns(file, names, values):
    """Write a CSV of header ``names`` and rows ``values`` (shape (n_rows, len(names))).

    Floats are written as the shortest text that reads back as the same float.
    """
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(names)
    for row in values:
        writer.writerow([repr(float(v)) if isinstance(v, float | np.floating) else v for v in row])


# Sparse data (issue #15): svmlight/libsvm text files, whose rows carry their label, and SciPy
# .npz matrices (scipy.sparse.save_npz), whose labels come from a text file of their own.
SVMLIGHT_SUFFIXES = (".svm", ".svmlight", ".libsvm")


def is_sparse_file(path):
    """Whether ``path`` names sparse data (by its suffix) rather than a CSV table."""
    return str(path).lower().endswith((*SVMLIGHT_SUFFIXES, ".npz"))


def read_sparse(path, n_features=None):
    """X (CSR, float64) and the labels (ndarray, or None for a .npz matrix) of a sparse file.

    ``n_features`` (the model's, when predicting) fixes the svmlight file's width; a row with a
    larger column index is an error. Raises DataError with a one-line message.
    """
    import scipy.sparse
    from sklearn.datasets import load_svmlight_file

    if not os.path.isfile(path):
        raise DataError(f"no such file: {path}")
    if str(path).lower().endswith(".npz"):
        try:
            X = scipy.sparse.load_npz(path)
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path} is not a SciPy sparse matrix (.npz): {exc}") from None
        X = X.tocsr()
        if n_features is not None and X.shape[1] != n_features:
            raise DataError(
                f"{path} has {X.shape[1]} columns, but the model takes {n_features} features"
            )
        y = None
    else:
        try:
            X, y = load_svmlight_file(path, n_features=n_features, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} is not a valid svmlight/libsvm file: {exc}") from None
    if X.shape[0] == 0:
        raise DataError(f"{path} has no data rows")
    if not np.isfinite(X.data).all():
        raise DataError(f"{path} contains a value that is not a finite number")
    return X, y


def read_labels(path, n_rows):
    """One label per line of a text file, for the rows of a .npz matrix."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            labels = [line.strip() for line in file if line.strip()]
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(labels) != n_rows:
        raise DataError(f"{path} has {len(labels)} labels, but the data have {n_rows} rows")
    return np.array(labels)
