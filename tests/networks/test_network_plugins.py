"""The ``trpo_tf.networks`` group: choosing a network in YAML, its errors, the pre-check.

The default (``mlp`` from ``policy.hidden``/``activation``) must build exactly the
networks ``build_mlp`` built before the group existed: same layers, same weights.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

import gymnasium as gym
import numpy as np
import pytest

from trpo_tf import registry
from trpo_tf.agent import Agent
from trpo_tf.config import experiment_from_dict, load_experiment
from trpo_tf.config.build import build_policy, build_value
from trpo_tf.config.build_networks import network_choice
from trpo_tf.errors import ConfigError, PluginError, RegistryError
from trpo_tf.networks import build_mlp, make_cnn, make_mlp
from trpo_tf.plugin_checks import check_plugins
from trpo_tf.rollout.numpy_actor import can_mirror
from trpo_tf.run.training import make_actor

CARTPOLE = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
SMALL_CNN = {"name": "cnn", "filters": [4, 8], "kernel_sizes": [3, 3], "strides": [1, 2]}


def _config(**sections):
    return experiment_from_dict(sections)


def _weights(network) -> list[np.ndarray]:
    return [np.asarray(v.value) for v in network.weights]


def _one_line(caught: pytest.ExceptionInfo) -> str:
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --- the group ------------------------------------------------------------------------


def test_builtins_are_registered_in_the_group() -> None:
    assert registry.NETWORKS == "trpo_tf.networks"
    assert registry.NETWORKS in registry.GROUPS
    assert {"mlp", "cnn"} <= set(registry.names(registry.NETWORKS))
    assert registry.load(registry.NETWORKS, "mlp") is make_mlp
    assert registry.load(registry.NETWORKS, "cnn") is make_cnn
    assert registry.kind(registry.NETWORKS) == "network"
    listing = registry.format_plugins()
    section = listing.split("trpo_tf.networks (networks)", 1)[1]
    assert "trpo_tf.networks.mlp:make_mlp" in section
    assert "trpo_tf.networks.cnn:make_cnn" in section


# --- the default is today's MLP -------------------------------------------------------


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"policy": {"hidden": [32, 16], "activation": "relu"}, "value": {"hidden": [8]}},
        {"policy": {"network": {"name": "mlp"}}, "seed": 5},
        {"env": {"id": "Pendulum-v1"}, "policy": {"distribution": "gsde", "hidden": [64, 64]}},
    ],
)
def test_default_network_is_the_mlp_built_as_before(sections) -> None:
    config = _config(**sections)
    env_id = config.env.id
    action_space = gym.make(env_id).action_space
    obs_dim = int(np.prod(gym.make(env_id).observation_space.shape))
    policy = build_policy(config, obs_dim, action_space)
    value, _ = build_value(config, obs_dim)
    features = int(getattr(policy.head, "num_features", 0))
    expected_policy = build_mlp(
        obs_dim,
        config.policy.hidden,
        policy.head.num_inputs - features,
        activation=config.policy.activation,
        output_gain=0.01,
        seed=config.seed,
        name="policy_network",
        append_features=bool(features),
    )
    expected_value = build_mlp(
        obs_dim,
        config.value.hidden,
        1,
        activation=config.value.activation,
        output_gain=1.0,
        seed=config.seed + 7919,
        name="value_network",
    )
    for built, expected in ((policy.network, expected_policy), (value, expected_value)):
        assert built.name == expected.name
        assert [type(layer) for layer in built.layers] == [type(la) for la in expected.layers]
        assert [layer.name for layer in built.layers] == [la.name for la in expected.layers]
        for a, b in zip(_weights(built), _weights(expected), strict=True):
            np.testing.assert_array_equal(a, b)
    assert can_mirror(policy)  # rollouts keep the numpy mirror


def test_the_mlp_needs_no_env_to_build(monkeypatch) -> None:
    import trpo_tf.config.build_networks as build_networks

    def no_env(config):
        raise AssertionError("the mlp must not make an env")

    monkeypatch.setattr(build_networks, "env_observation_space", no_env)
    monkeypatch.setattr("trpo_tf.agent.env_observation_space", no_env)
    Agent.build(_config(), 4, gym.spaces.Discrete(2))


# --- choosing a network in YAML -------------------------------------------------------


def test_value_network_defaults_to_the_policy_network() -> None:
    config = _config(policy={"network": dict(SMALL_CNN)})
    assert network_choice(config, "policy").name == "cnn"
    inherited = network_choice(config, "value")
    assert (inherited.name, inherited.kwargs) == (
        "cnn",
        {k: v for k, v in SMALL_CNN.items() if k != "name"},
    )
    own = network_choice(
        _config(policy={"network": SMALL_CNN}, value={"network": {"name": "mlp"}}), "value"
    )
    assert (own.key, own.name, own.kwargs) == ("value.network", "mlp", {})
    assert network_choice(_config(value={"network": {"name": "cnn"}}), "policy").name == "mlp"


def test_network_keys_load_from_yaml_and_set(tmp_path) -> None:
    path = tmp_path / "experiment.yaml"
    path.write_text("policy:\n  network: {name: cnn, filters: [8]}\n")
    config = load_experiment(path, ["value.network.name=mlp", "policy.network.strides=[2]"])
    assert config.policy.network == {"name": "cnn", "filters": [8], "strides": [2]}
    assert config.value.network == {"name": "mlp"}


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        (
            {"policy": {"network": {"name": "cnn", "hidden": [512]}}},
            "policy.network.hidden conflicts with policy.hidden: every network takes its fully "
            "connected layers from policy.hidden and policy.activation; set policy.hidden and "
            "remove policy.network.hidden",
        ),
        (
            {"value": {"network": {"activation": "relu"}}},
            "value.network.activation conflicts with value.activation: every network takes its "
            "fully connected layers from value.hidden and value.activation; set "
            "value.activation and remove value.network.activation",
        ),
        (
            {"policy": {"network": {"name": 3}}},
            "policy.network.name must be the name of a network (trpo_tf.networks), got 3",
        ),
    ],
)
def test_conflicting_or_malformed_network_is_one_line(sections, message) -> None:
    with pytest.raises(ConfigError) as caught:
        Agent.build(_config(**sections), 4, gym.spaces.Discrete(2), CARTPOLE)
    assert _one_line(caught) == message


def test_unknown_network_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError) as caught:
        Agent.build(
            _config(policy={"network": {"name": "cnm"}}), 4, gym.spaces.Discrete(2), CARTPOLE
        )
    message = _one_line(caught)
    assert message.startswith("unknown network 'cnm'; did you mean 'cnn'? available: ")
    assert "mlp" in message


def test_unknown_network_keyword_suggests_the_closest() -> None:
    image = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
    config = _config(policy={"network": {"name": "cnn", "filter": [8]}})
    with pytest.raises(ConfigError) as caught:
        Agent.build(config, 432, gym.spaces.Discrete(2), image)
    assert _one_line(caught).startswith(
        "unknown key 'policy.network.filter': network 'cnn' takes no keyword 'filter'; "
        "did you mean 'filters'? (it accepts filters, kernel_sizes, strides,"
    )
    with pytest.raises(ConfigError) as caught:
        Agent.build(_config(policy={"network": {"width": 3}}), 4, gym.spaces.Discrete(2), CARTPOLE)
    assert _one_line(caught) == (
        "unknown key 'policy.network.width': network 'mlp' takes no keyword 'width' "
        "(it accepts no keywords)"
    )


def test_cnn_errors_name_the_key() -> None:
    config = _config(policy={"network": {"name": "cnn"}}, value={"network": {"name": "mlp"}})
    with pytest.raises(ConfigError) as caught:
        Agent.build(config, 4, gym.spaces.Discrete(2), CARTPOLE)
    assert _one_line(caught).startswith(
        "policy.network: network 'cnn' needs an image observation space, a Box of shape "
        "(H, W, C) or (H, W), got Box("
    )
    image = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
    # Nature DQN's stack leaves nothing of a 12x12 image after its second convolution.
    with pytest.raises(ConfigError) as caught:
        Agent.build(
            _config(policy={"network": {"name": "cnn"}}), 432, gym.spaces.Discrete(2), image
        )
    assert _one_line(caught) == (
        "policy.network: network 'cnn': convolution 1 (kernel 4, stride 2) gets a 2x2 input "
        "from the 12x12 observation and leaves nothing; use smaller kernel_sizes or strides, "
        "fewer convolutions, or padding: same"
    )
    bad = {"name": "cnn", "filters": [4, 8], "kernel_sizes": 3, "strides": [1]}
    with pytest.raises(ConfigError) as caught:
        Agent.build(_config(policy={"network": bad}), 432, gym.spaces.Discrete(2), image)
    assert _one_line(caught) == (
        "policy.network: network 'cnn': strides has 1 entries but filters has 2; give one "
        "per convolution (or one int for all)"
    )


# --- the cnn in an agent --------------------------------------------------------------


def test_cnn_agent_reads_the_image_shape_from_the_env_and_uses_the_tensorflow_actor() -> None:
    config = _config(env={"id": "pixel_grid", "n_envs": 2}, policy={"network": SMALL_CNN})
    agent = Agent.build(config, 675, gym.spaces.Discrete(4))  # the space comes from the env
    assert agent.policy.network.get_layer("image").output.shape[1:] == (15, 15, 3)
    assert agent.value_network.get_layer("image").output.shape[1:] == (15, 15, 3)
    assert not can_mirror(agent.policy)
    assert type(make_actor(agent.policy, 2, 675, 0)).__name__ == "Actor"


def test_cnn_scales_uint8_pixels_unless_observations_are_normalized() -> None:
    image = gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)
    config = _config(policy={"network": SMALL_CNN})
    network = Agent.build(config, 432, gym.spaces.Discrete(2), image).policy.network
    assert network.get_layer("scale").scale == pytest.approx(1 / 255)
    normalized = _config(env={"normalize_obs": True}, policy={"network": SMALL_CNN})
    network = Agent.build(normalized, 432, gym.spaces.Discrete(2), image).policy.network
    assert "scale" not in [layer.name for layer in network.layers]
    floats = gym.spaces.Box(0.0, 1.0, (12, 12), np.float32)  # (H, W): one channel, no scaling
    network = Agent.build(config, 144, gym.spaces.Discrete(2), floats).policy.network
    assert network.get_layer("image").output.shape[1:] == (12, 12, 1)
    assert "scale" not in [layer.name for layer in network.layers]


def test_cnn_sees_the_image_training_flattened() -> None:
    """The reshape inverts gymnasium's flatten: pixel (h, w, c) reaches the convolution there."""
    import keras

    space = gym.spaces.Box(0, 255, (6, 5, 2), np.uint8)
    space.seed(0)
    images = np.stack([space.sample() for _ in range(3)])
    flat = np.stack([gym.spaces.flatten(space, image) for image in images]).astype(np.float32)
    network = Agent.build(
        _config(
            policy={"network": {"name": "cnn", "filters": [2], "kernel_sizes": 1, "strides": 1}}
        ),
        60,
        gym.spaces.Discrete(2),
        space,
    ).policy.network
    scaled = keras.Model(network.inputs[0], network.get_layer("scale").output)(flat)
    np.testing.assert_allclose(np.asarray(scaled), images / 255.0, rtol=1e-6)


# --- the pre-check --------------------------------------------------------------------

FAKE_NETWORKS = """
import keras


def _model(spec, width):
    return keras.Sequential(
        [keras.Input(shape=(spec.observation_dim,)), keras.layers.Dense(width)], name=spec.name
    )


def make_wrong_width(spec):
    return _model(spec, spec.output_width + 1)


def make_not_a_model(spec):
    return lambda x: x


def make_raising(spec, depth=1):
    raise RuntimeError("no weights for depth %d" % depth)
"""

FAKE_ENTRY_POINTS = {
    "fake_wrong_width": "make_wrong_width",
    "fake_not_a_model": "make_not_a_model",
    "fake_raising": "make_raising",
}


@pytest.fixture
def fake_networks(tmp_path, monkeypatch):
    """Package ``trpo-tf-fake-nets`` 0.1.0 registering broken networks."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "fake_network_plugins.py").write_text(FAKE_NETWORKS)
    info_dir = tmp_path / "trpo_tf_fake_nets-0.1.0.dist-info"
    info_dir.mkdir()
    (info_dir / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: trpo-tf-fake-nets\nVersion: 0.1.0\n"
    )
    (info_dir / "entry_points.txt").write_text(
        f"[{registry.NETWORKS}]\n"
        + "".join(
            f"{name} = fake_network_plugins:{target}\n"
            for name, target in FAKE_ENTRY_POINTS.items()
        )
    )
    extra = list(importlib.metadata.PathDistribution(info_dir).entry_points)
    monkeypatch.syspath_prepend(str(code))
    importlib.invalidate_caches()
    real = registry._entry_points

    def entry_points(group: str):
        return list(real(group)) + [ep for ep in extra if ep.group == group]

    monkeypatch.setattr(registry, "_entry_points", entry_points)
    registry.clear_cache()
    yield
    registry.clear_cache()
    sys.modules.pop("fake_network_plugins", None)


def test_pre_check_runs_both_networks_on_real_observations() -> None:
    config = _config(env={"id": "pixel_grid", "n_envs": 2}, policy={"network": SMALL_CNN})
    times = check_plugins(config)
    assert times.network > 0
    check_plugins(_config())  # the default mlp, CartPole


def test_pre_check_names_a_network_with_the_wrong_output_width(fake_networks) -> None:
    config = _config(policy={"network": {"name": "fake_wrong_width"}})
    with pytest.raises(PluginError) as caught:
        check_plugins(config)
    assert _one_line(caught) == (
        "policy.network: network 'fake_wrong_width' (package trpo-tf-fake-nets 0.1.0, entry "
        "point fake_network_plugins:make_wrong_width) breaks the NetworkFactory contract: "
        "network(observations) returned shape [7, 3] for observations [7, 4], expected "
        "[7, 2] = [batch, output_width] (policy_network)"
    )
    config = _config(value={"network": {"name": "fake_wrong_width"}})
    with pytest.raises(PluginError) as caught:
        check_plugins(config)
    assert "value.network: network 'fake_wrong_width'" in _one_line(caught)
    assert "expected [7, 1] = [batch, output_width] (value_network)" in str(caught.value)


def test_a_factory_that_returns_no_model_or_raises_is_one_line(fake_networks) -> None:
    with pytest.raises(PluginError) as caught:
        Agent.build(
            _config(policy={"network": {"name": "fake_not_a_model"}}), 4, gym.spaces.Discrete(2)
        )
    assert _one_line(caught).endswith(
        "breaks the NetworkFactory contract: factory(spec) returned function, not a keras.Model; "
        "return a built model [batch, observation_dim] -> [batch, output_width]"
    )
    with pytest.raises(PluginError) as caught:
        Agent.build(
            _config(policy={"network": {"name": "fake_raising"}}), 4, gym.spaces.Discrete(2)
        )
    assert _one_line(caught).startswith(
        "policy.network: network 'fake_raising' (package trpo-tf-fake-nets 0.1.0, entry point "
        "fake_network_plugins:make_raising) raised in factory(spec, **policy.network): "
        "RuntimeError: no weights for depth 1"
    )
    with pytest.raises(ConfigError) as caught:
        Agent.build(
            _config(policy={"network": {"name": "fake_raising", "depth": "deep"}}),
            4,
            gym.spaces.Discrete(2),
        )
    # A TypeError while keywords are given is the config's (a value of the wrong type).
    assert _one_line(caught).startswith(
        "policy.network: network 'fake_raising' (package trpo-tf-fake-nets 0.1.0, entry point "
        "fake_network_plugins:make_raising) rejected {'depth': 'deep'}: TypeError: "
    )
