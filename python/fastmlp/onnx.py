"""Export fitted fastmlp estimators to ONNX, through scikit-learn's estimators and skl2onnx.

fastmlp's estimators convert to the equivalent scikit-learn estimators (``to_sklearn()``),
which skl2onnx translates into an ONNX graph that ONNX runtimes (onnxruntime and others) run
without Python. :func:`to_onnx` does that conversion and covers what skl2onnx alone does not:

- Classifiers return plain arrays: ``label`` of shape ``(n_samples,)`` (``(n_samples,
  n_classes)`` for multilabel targets) and ``probabilities`` of shape ``(n_samples,
  n_classes)``, in the order of ``classes_`` (skl2onnx's default is a list of dictionaries).
- Regressors with several outputs return ``variable`` of shape ``(n_samples, n_outputs)``
  (skl2onnx 1.20 flattens them into one column), and ``loss='poisson'`` regressors get their
  exponential output (skl2onnx has no converter for it). Single-output regressors return
  shape ``(n_samples, 1)``, as skl2onnx does.
- A :class:`~sklearn.pipeline.Pipeline` whose steps include fastmlp estimators converts too.
- fastmlp's own hidden activations, which scikit-learn (and so ``to_sklearn()``) lacks, are
  built here: the model is converted as a relu network and each hidden ``Relu`` node is then
  replaced by ``LeakyRelu(alpha=leaky_relu_slope)`` (leaky_relu), ``x * 0.5 * (1 + Erf(x /
  sqrt 2))`` (gelu, the exact form) or ``x * Sigmoid(x)`` (silu). Such an estimator converts
  alone, not inside a Pipeline. In a float64 graph leaky_relu is ``Where(x > 0, x, slope * x)``
  and gelu's Erf runs in float32 (onnxruntime has neither op in double), so a float64 gelu
  graph agrees with the model to about 1e-7, not to float64 rounding.

It needs the optional packages skl2onnx and onnx (``pip install "fastmlp[onnx]"``), imported
only when :func:`to_onnx` runs; onnxruntime is needed only to run the result.
"""

import copy

import numpy as np

_INSTALL_HINT = 'fastmlp.onnx needs skl2onnx and onnx: pip install "fastmlp[onnx]"'
# fastmlp's hidden activations that scikit-learn lacks: the graph is built here.
_OWN = ("leaky_relu", "gelu", "silu")


def to_onnx(estimator, X_sample, *, target_opset=None):
    """Convert a fitted fastmlp estimator, or a Pipeline that holds some, to an ONNX model.

    Parameters
    ----------
    estimator : fastmlp.MLPClassifier, fastmlp.MLPRegressor or sklearn.pipeline.Pipeline
        Fitted. In a Pipeline (nested Pipelines included), every fastmlp estimator is converted
        with ``to_sklearn()``; the other steps must be estimators that skl2onnx converts.
    X_sample : array-like of shape (n_samples, n_features)
        A few rows of input, float32 or float64: they fix the input's type and width. The
        graph takes one input, ``X``, of that dtype and computes in it (a float32 sample gives
        a float32 graph, as fastmlp computes a float32 model).
    target_opset : int, optional
        The ONNX opset to target; skl2onnx's default (the newest it knows) if None.

    Returns
    -------
    model : onnx.ModelProto
        Outputs ``label`` and ``probabilities`` (classifiers) or ``variable`` (regressors).
        ``model.SerializeToString()`` gives the bytes that ``onnxruntime.InferenceSession``
        reads.

    Raises
    ------
    ImportError
        If skl2onnx or onnx is not installed.
    sklearn.exceptions.NotFittedError
        If a fastmlp estimator in ``estimator`` is not fitted.

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp import MLPClassifier
    >>> from fastmlp.onnx import to_onnx
    >>> X = np.random.RandomState(0).rand(40, 3).astype(np.float32)
    >>> clf = MLPClassifier((4,), solver="lbfgs", random_state=0).fit(X, X[:, 0] > 0.5)
    >>> model = to_onnx(clf, X[:1])
    >>> [output.name for output in model.graph.output]
    ['label', 'probabilities']
    >>> import onnxruntime
    >>> session = onnxruntime.InferenceSession(model.SerializeToString())
    >>> labels, probabilities = session.run(None, {"X": X})
    >>> bool(np.abs(probabilities - clf.predict_proba(X)).max() < 1e-5)
    True
    """
    try:
        import onnx
        import skl2onnx
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier

    X_sample = np.asarray(X_sample)
    if X_sample.ndim != 2 or X_sample.shape[0] == 0:
        raise ValueError(
            f"X_sample must be a 2-D array with at least one row, got shape {X_sample.shape}"
        )
    if X_sample.dtype not in (np.float32, np.float64):
        raise ValueError(
            f"X_sample must be float32 or float64 (the graph's input type), got {X_sample.dtype}"
        )

    from fastmlp._base import BaseMultilayerPerceptron

    own_activation = None  # (activation, slope) of a fastmlp-only hidden activation
    if isinstance(estimator, BaseMultilayerPerceptron) and estimator.activation in _OWN:
        own_activation = (estimator.activation, float(estimator.leaky_relu_slope))
        estimator = copy.copy(estimator)  # converted as relu; the Relu nodes replaced below
        estimator.activation = "relu"
    converted, final = _as_sklearn(estimator)
    # The regressor's output, fixed after the conversion (see _fix_regressor_output).
    n_outputs = exp_output = None
    if _is_mlp_regressor(final):
        n_outputs = final.n_outputs_
        exp_output = final.out_activation_ == "exp"
        if exp_output:
            final.out_activation_ = "identity"  # our own copy; Exp is appended below
    model = skl2onnx.to_onnx(
        converted,
        X_sample[:1],
        target_opset=target_opset,
        options={SklearnMLPClassifier: {"zipmap": False}},
    )
    if n_outputs is not None and (n_outputs > 1 or exp_output):
        _fix_regressor_output(model, n_outputs, exp_output)
    if isinstance(final, SklearnMLPClassifier) and len(final.classes_) == 1:
        _fix_single_class_probabilities(model)
    if own_activation is not None:
        _replace_relu(model, *own_activation, X_sample.dtype)
    onnx.checker.check_model(model)
    return model


def _as_sklearn(estimator):
    """(estimator with every fastmlp estimator in it converted, its final estimator)."""
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    from fastmlp._base import BaseMultilayerPerceptron

    if isinstance(estimator, BaseMultilayerPerceptron):
        check_is_fitted(estimator, ["coefs_", "intercepts_"])
        if estimator.activation in _OWN:
            raise ValueError(
                f"a fastmlp estimator with activation={estimator.activation!r} converts to ONNX "
                "alone, not inside a Pipeline: convert the estimator by itself"
            )
        converted = estimator.to_sklearn()  # a copy: ours to modify
        return converted, converted
    if isinstance(estimator, Pipeline):
        steps, final = [], None
        for name, step in estimator.steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                steps.append((name, step))
                continue
            step, final = _as_sklearn(step)
            steps.append((name, step))
        pipeline = copy.copy(estimator)  # a new Pipeline object; the caller's keeps its steps
        pipeline.steps = steps
        return pipeline, final
    return estimator, estimator


def _is_mlp_regressor(estimator):
    from sklearn.neural_network import MLPRegressor

    return type(estimator) is MLPRegressor


def _fix_regressor_output(model, n_outputs, exp_output):
    """Reshape the regressor's output to (n_samples, n_outputs); apply exp if asked.

    skl2onnx's MLPRegressor converter reshapes its output to (-1, 1), which turns
    (n_samples, n_outputs) into (n_samples * n_outputs, 1), and has no 'exp' output activation.
    The graph's output is renamed, and a Reshape (and an Exp) appended that write the output
    under its original name: the fix depends only on the graph's output, not on how skl2onnx
    built the rest, and is a no-op reshape should skl2onnx reshape correctly one day.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    output = graph.output[0]
    raw = _unique_name(graph, output.name + "_fastmlp_flat")
    for node in graph.node:
        for i, name in enumerate(node.output):
            if name == output.name:
                node.output[i] = raw
        for i, name in enumerate(node.input):
            if name == output.name:
                node.input[i] = raw
    shape = _unique_name(graph, "fastmlp_output_shape")
    graph.initializer.append(
        numpy_helper.from_array(np.array([-1, n_outputs], dtype=np.int64), name=shape)
    )
    reshaped = _unique_name(graph, output.name + "_fastmlp_reshaped") if exp_output else None
    reshape_name = _unique_name(graph, "fastmlp_Reshape")
    graph.node.append(
        helper.make_node("Reshape", [raw, shape], [reshaped or output.name], name=reshape_name)
    )
    if reshaped is not None:  # the poisson regressor's exp output
        exp_name = _unique_name(graph, "fastmlp_Exp")
        graph.node.append(helper.make_node("Exp", [reshaped], [output.name], name=exp_name))
    elem_type = output.type.tensor_type.elem_type or TensorProto.FLOAT
    graph.output.remove(output)
    fixed = helper.make_tensor_value_info(output.name, elem_type, [None, n_outputs])
    graph.output.insert(0, fixed)


def _fix_single_class_probabilities(model):
    """Give a one-class classifier's ``probabilities`` the two columns ``(1 - p, p)`` of
    ``predict_proba`` (scikit-learn's, and so fastmlp's), where skl2onnx outputs ``p`` alone.

    The label keeps reading ``p`` (one column: its argmax is the one class).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    output = next(v for v in graph.output if v.name == "probabilities")
    raw = _unique_name(graph, "probabilities_fastmlp_p")
    for node in graph.node:
        node.output[:] = [raw if name == output.name else name for name in node.output]
        node.input[:] = [raw if name == output.name else name for name in node.input]
    elem_type = output.type.tensor_type.elem_type
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    one = _unique_name(graph, "fastmlp_one")
    graph.initializer.append(numpy_helper.from_array(np.ones((1, 1), dtype), name=one))
    complement = _unique_name(graph, "probabilities_fastmlp_1_minus_p")
    graph.node.append(
        helper.make_node("Sub", [one, raw], [complement], name=_unique_name(graph, "fastmlp_Sub"))
    )
    graph.node.append(
        helper.make_node(
            "Concat",
            [complement, raw],
            [output.name],
            axis=1,
            name=_unique_name(graph, "fastmlp_Concat"),
        )  # fmt: skip
    )
    fixed = helper.make_tensor_value_info(output.name, elem_type, [None, 2])
    index = list(graph.output).index(output)
    graph.output.remove(output)
    graph.output.insert(index, fixed)


def _unique_name(graph, base):
    taken = {name for node in graph.node for name in (*node.input, *node.output, node.name)}
    taken |= {t.name for t in graph.initializer} | {v.name for v in graph.input}
    taken |= {v.name for v in graph.output} | {v.name for v in graph.value_info}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def _replace_relu(model, activation, slope, dtype):
    """Replace every ``Relu`` node (the hidden layers of a relu MLP: its output layer has none)
    by ``activation``'s own nodes, computing in ``dtype``."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {}

    def constant(value, base):
        if base not in constants:
            name = _unique_name(graph, base)
            graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype), name))
            constants[base] = name
        return constants[base]

    nodes = []
    for node in list(graph.node):
        if node.op_type != "Relu":
            nodes.append(node)
            continue
        x, y = node.input[0], node.output[0]

        def make(op, inputs, output, **attrs):
            node_name = _unique_name(graph, f"fastmlp_{activation}_{op}")
            made = helper.make_node(op, inputs, [output], name=node_name, **attrs)
            nodes.append(made)
            graph.node.append(made)  # (only so that _unique_name sees the name; reset below)
            return output

        if activation == "leaky_relu" and dtype == np.float32:
            # f(x) = x for x > 0, slope * x below
            make("LeakyRelu", [x], y, alpha=slope)
        elif activation == "leaky_relu":
            # The same as Where(x > 0, x, slope * x): onnxruntime has no double LeakyRelu.
            positive = make(
                "Greater", [x, constant(0, "fastmlp_zero")], _unique_name(graph, f"{x}_pos")
            )
            sloped = make(
                "Mul", [x, constant(slope, "fastmlp_slope")], _unique_name(graph, f"{x}_sl")
            )
            make("Where", [positive, x, sloped], y)
        elif activation == "gelu":
            # f(x) = x * 0.5 * (1 + erf(x / sqrt 2))
            scaled = make("Mul", [x, constant(1 / np.sqrt(2), "fastmlp_inv_sqrt2")],
                          _unique_name(graph, f"{x}_over_sqrt2"))  # fmt: skip
            if dtype == np.float32:
                erf = make("Erf", [scaled], _unique_name(graph, f"{x}_erf"))
            else:
                # onnxruntime has no double Erf: erf is taken in float32 (relative error ~1e-7).
                single = make("Cast", [scaled], _unique_name(graph, f"{x}_f32"), to=1)
                erf32 = make("Erf", [single], _unique_name(graph, f"{x}_erf32"))
                erf = make("Cast", [erf32], _unique_name(graph, f"{x}_erf"), to=11)
            shifted = make(
                "Add", [erf, constant(1, "fastmlp_one")], _unique_name(graph, f"{x}_1p")
            )
            half = make("Mul", [shifted, constant(0.5, "fastmlp_half")],
                        _unique_name(graph, f"{x}_cdf"))  # fmt: skip
            make("Mul", [x, half], y)
        else:
            # silu: f(x) = x * sigmoid(x)
            sigmoid = make("Sigmoid", [x], _unique_name(graph, f"{x}_sigmoid"))
            make("Mul", [x, sigmoid], y)
    del graph.node[:]
    graph.node.extend(nodes)
