"""One epoch through the backend interface, in the shape of a single call: the tests of the
epoch loop build a trainer for every epoch they run (a fit builds one for all its epochs)."""


def train_epoch(
    module, X, Y, sample_weight, order, batch_size, coefs, intercepts, first, second,
    activation, output_activation, loss, alpha, *, learning_rate, t, **settings,
):  # fmt: skip
    """``module.Trainer(...).run(order, learning_rate)``: returns (summed batch losses, t)."""
    trainer = module.Trainer(
        X, Y, sample_weight, coefs, intercepts, first, second,
        activation=activation, output_activation=output_activation, loss=loss, alpha=alpha,
        batch_size=batch_size, learning_rate=learning_rate, t=t, **settings,
    )  # fmt: skip
    return trainer.run(order, learning_rate)
