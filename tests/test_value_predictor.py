"""V_φ for advantage estimation: the numpy mirror and its compiled fallback."""

from __future__ import annotations

import keras
import numpy as np

from trpo_tf.learner import value_predictor
from trpo_tf.networks import build_mlp


def test_numpy_mirror_matches_the_network_and_reads_current_weights() -> None:
    network = build_mlp(5, [32, 32], 1, seed=3, name="value")
    predict = value_predictor(network, 5)
    observations = np.random.default_rng(0).normal(size=(300, 5)).astype(np.float32)
    before = predict(observations)
    assert before.shape == (300,)
    np.testing.assert_allclose(before, network(observations).numpy()[:, 0], atol=1e-5)
    # φ changes after every value fit: the next call must see the new weights.
    last = network.layers[-1]
    last.bias.assign(last.bias.numpy() + 2.0)
    np.testing.assert_allclose(predict(observations), before + 2.0, atol=1e-5)


def test_networks_that_are_not_plain_dense_use_a_compiled_call() -> None:
    inputs = keras.Input((3,))
    hidden = keras.layers.LayerNormalization()(keras.layers.Dense(8, activation="tanh")(inputs))
    network = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    predict = value_predictor(network, 3)
    observations = np.random.default_rng(1).normal(size=(7, 3)).astype(np.float32)
    np.testing.assert_allclose(
        predict(observations), network(observations).numpy()[:, 0], rtol=1e-6
    )
