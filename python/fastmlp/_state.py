"""The estimators' state, declared once.

Saving and loading (``fastmlp._persistence``), converting to and from scikit-learn
(``fastmlp._sklearn_interop``) and continuing a fit after either (``partial_fit``, warm starts)
read what a fitted estimator holds from these declarations, so that a new attribute is added in
one place. The names are scikit-learn's own, private ones included (``_optimizer``,
``_no_improvement_count``, ``_best_coefs``...): its tests and tools read them.

The estimator classes register here (:func:`estimator_class`) with their scikit-learn
counterparts, so that the modules that build estimators by kind need not import them (which
would make an import cycle with the base class).
"""

# Fitted scalars and the types they must have. Every fit sets the first seven; the stochastic
# solvers set the others (None where scikit-learn sets None).
REQUIRED_SCALARS: dict[str, type | tuple[type, ...]] = {
    "n_iter_": int,
    "t_": int,
    "n_layers_": int,
    "n_outputs_": int,
    "n_features_in_": int,
    "out_activation_": str,
    "loss_": float,
}
OPTIONAL_SCALARS: dict[str, type | tuple[type, ...]] = {
    "best_loss_": (float, type(None)),
    "best_validation_score_": (float, type(None)),
    "_no_improvement_count": int,
}
# Per-epoch records (lists of floats, or None).
CURVES = ("loss_curve_", "validation_scores_", "validation_loss_curve_")
# The network's parameters, lists of arrays, and early stopping's best ones.
PARAMETERS = ("coefs_", "intercepts_")
BEST_PARAMETERS = ("_best_coefs", "_best_intercepts")
# A classifier's labels.
LABELS = ("classes_", "_label_binarizer")
FEATURE_NAMES = "feature_names_in_"
# The stochastic solvers' state between calls: its kinds, their scalars and moment lists.
OPTIMIZER = "_optimizer"
OPTIMIZERS = {
    "SGDState": (
        ("learning_rate_init", "learning_rate", "lr_schedule", "momentum", "nesterov", "power_t"),
        ("velocities",),
    ),
    "AdamState": (
        ("learning_rate_init", "learning_rate", "beta_1", "beta_2", "epsilon", "t"),
        ("ms", "vs"),
    ),
}
# The random stream a fit leaves behind: scikit-learn keeps it; a saved model does not (a fit
# after loading draws from random_state anew, as a fresh fit would).
RANDOM_STATE = "_random_state"
# The output activations each kind of estimator can have.
OUTPUT_ACTIVATIONS = {
    "MLPClassifier": ("logistic", "softmax"),
    "MLPRegressor": ("identity", "exp"),
}
# Parameters of fastmlp's that scikit-learn's MLP lacks: they change where or how training runs
# (the device; how much each class's samples weigh), not how the model computes, and conversion
# to scikit-learn drops them.
TRAINING_ONLY_PARAMS = ("device", "class_weight")


def fitted_attributes():
    """Every attribute name a fitted estimator may hold, in a stable order."""
    return (
        *PARAMETERS,
        *REQUIRED_SCALARS,
        *OPTIONAL_SCALARS,
        *CURVES,
        *BEST_PARAMETERS,
        *LABELS,
        FEATURE_NAMES,
        OPTIMIZER,
        RANDOM_STATE,
    )


# fastmlp's estimator classes by name, and each one's scikit-learn counterpart.
ESTIMATORS: dict[str, type] = {}
SKLEARN_COUNTERPARTS: dict[type, type] = {}


def estimator_class(sklearn_class):
    """Class decorator: register a fastmlp estimator and its scikit-learn counterpart."""

    def register(cls):
        ESTIMATORS[cls.__name__] = cls
        SKLEARN_COUNTERPARTS[cls] = sklearn_class
        return cls

    return register
