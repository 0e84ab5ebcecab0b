"""Experiment schema: frozen dataclasses with defaults.

The YAML keys of an experiment map one-to-one onto these fields (the README's
"Experiments in YAML" and ``experiments/*.yaml`` show them in use; docs/plugins.md
covers the keys that name plug-ins). Range constraints live in field metadata and are
enforced by ``config.loader``:

* ``min`` / ``max``: inclusive bounds,
* ``gt`` / ``lt``: exclusive bounds,
* ``choices``: the allowed values of a string field,
* ``min_item`` / ``max_item`` / ``max_items``: bounds of a list's items and its length,
* ``float32``: the value is used as a float32 (in TensorFlow or numpy), so it must be
  finite as a float32 and the bounds hold for its float32 rounding too (``1e-50``
  is not ``> 0`` there),
* ``path_component``: the string names a directory, so it must be a single path
  component (see :data:`MAX_NAME_BYTES`).

An integer field without a ``max`` is at most :data:`INT32_MAX`, so that every
accepted integer fits the int32 TensorFlow counts in. The upper bounds say where a
value stops being a setting and starts exhausting memory or time; besides them, the
loader refuses a network and batch whose rough memory need exceeds the machine's
memory (``config.cross_checks.check_memory``).

Nothing below ``config.build`` ever receives a config dict: modules take these
dataclasses' fields as plain values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _bounded(default: Any, **constraints: Any) -> Any:
    return field(default=default, metadata=constraints)


INT32_MAX = 2**31 - 1
"""Largest value of an integer field that states no ``max`` of its own."""

SEED_MAX = 2**32 - 1
"""Largest seed: numpy seeds its global generator from a uint32."""

MAX_WIDTH = 16_384
"""Widest hidden layer: one 16,384-wide layer after another holds 268 M weights (1 GiB)."""

MAX_LAYERS = 64
"""Most hidden layers in a network."""

MAX_NAME_BYTES = 200
"""Longest experiment name in UTF-8 bytes: run directories add ``-s<seed>-<time>`` and
file systems allow 255 bytes per component."""


def _listed(default: list[int]) -> Any:
    return field(
        default_factory=lambda: tuple(default),
        metadata={"min_item": 1, "max_item": MAX_WIDTH, "max_items": MAX_LAYERS},
    )


@dataclass(frozen=True)
class EnvConfig:
    """``env:`` — what to train on and how observations/rewards are preprocessed."""

    id: str = "CartPole-v1"
    """A gymnasium id (``HalfCheetah-v5``) or a name from the ``trpo_tf.envs`` group."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the env's constructor (of ``gymnasium.make`` for an id).
    ``render_mode`` may only be ``rgb_array`` or null: training never shows a window."""
    n_envs: int = _bounded(8, min=1, max=1024)
    """Env copies stepped together (sync: objects in this process; async: a process
    each); at most 1,024."""
    vector: str = _bounded("sync", choices=("sync", "async"))
    """How a sync runner steps its ``n_envs`` copies: ``sync`` in this process (fastest
    on few cores), ``async`` one process each (gymnasium's AsyncVectorEnv)."""
    normalize_obs: bool = False
    """Normalize observations by running mean/std (saved in checkpoints and exports)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (for the update only)."""
    clip_obs: float = _bounded(10.0, gt=0.0, float32=True)
    """Normalized observations are clipped to ±clip_obs."""
    clip_nonfinite: bool = False
    """Replace NaN by 0 and ±inf or beyond-float32 values by ±1e6 in env outputs
    (counted in ``nonfinite_replaced``) instead of stopping with an error."""
    max_episode_steps: int | None = _bounded(None, min=1)
    """Truncate every episode after this many steps (a ``TimeLimit``; truncated
    episodes bootstrap from V). ``null`` keeps the env's own limit: a gymnasium id's
    registered ``max_episode_steps``, none for a plug-in env that sets none. For a
    gymnasium id it replaces the registered limit; a plug-in env's own limit still
    ends episodes first when it is shorter."""


@dataclass(frozen=True)
class PolicyConfig:
    """``policy:`` — the policy network and its action distribution."""

    distribution: str = "auto"
    """The action distribution (``trpo_tf.distributions``); ``auto`` picks from the
    action space (categorical, diag_gaussian, multi_categorical, bernoulli)."""
    distribution_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the distribution's factory (e.g. ``log_std_init``)."""
    hidden: tuple[int, ...] = _listed([64, 64])
    """Widths of the fully connected layers: the whole network for ``mlp``, the layers
    after a torso's own (the convolutions of ``cnn``) for other networks."""
    activation: str = _bounded("tanh", choices=("tanh", "relu", "elu", "gelu", "silu"))
    """Activation of the hidden layers."""
    network: dict[str, Any] = field(default_factory=dict)
    """The network (entry-point group ``trpo_tf.networks``) and its keyword arguments,
    e.g. ``{name: cnn, filters: [16, 32]}``; empty or without ``name``: ``mlp``, built
    from ``hidden`` and ``activation`` alone (a ``hidden`` or ``activation`` key here
    is an error: set those above)."""


@dataclass(frozen=True)
class ValueConfig:
    """``value:`` — the state-value baseline V(s) and its Adam regression."""

    hidden: tuple[int, ...] = _listed([64, 64])
    """Widths of V(s)'s fully connected layers (as ``policy.hidden``)."""
    activation: str = _bounded("tanh", choices=("tanh", "relu", "elu", "gelu", "silu"))
    """Activation of V(s)'s hidden layers."""
    network: dict[str, Any] = field(default_factory=dict)
    """Like ``policy.network``, for V(s) (its own weights); empty: the same network and
    keywords as ``policy.network``, with ``value.hidden`` and ``value.activation``."""
    learning_rate: float = _bounded(1.0e-3, gt=0.0, float32=True)
    """Adam's step size for the value regression."""
    epochs: int = _bounded(10, min=1)
    """Passes over the batch per value fit."""
    minibatch_size: int = _bounded(64, min=1)
    """Samples per Adam step of the value fit."""


@dataclass(frozen=True)
class AdvantageConfig:
    """``advantage:`` — the advantage estimator plug-in and its parameters."""

    estimator: str = "gae"
    """The advantage estimator (``trpo_tf.advantages``): ``gae`` or ``mc``."""
    gamma: float = _bounded(0.99, min=0.0, max=1.0, float32=True)
    """Discount factor γ."""
    lam: float = _bounded(0.95, min=0.0, max=1.0, float32=True)
    """GAE's λ (bias against variance of Â)."""
    normalize: bool = True
    """Standardize Â over the batch (mean 0, std 1) before the update."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the estimator's factory."""


@dataclass(frozen=True)
class TrainerConfig:
    """``trainer:`` — the TRPO step."""

    total_steps: int = _bounded(100_000, min=1, max=10**15)
    """Env steps to train for, whole iterations only; at most 1e15."""
    steps_per_iteration: int = _bounded(2048, min=1, max=2**24)
    """Samples per update, summed over all envs; at most 2**24 (16,777,216): the batch
    and the networks' activations on it are held in memory."""
    max_kl: float = _bounded(0.01, gt=0.0, float32=True)
    """δ: the trust region's bound on the mean KL(π_old ‖ π_θ)."""
    max_kl_final: float | None = _bounded(None, gt=0.0, float32=True)
    """δ at the end of training: δ moves linearly in env steps from ``max_kl`` at the
    first update to this at ``total_steps`` (at most ``max_kl``). null, the default,
    keeps δ = ``max_kl`` throughout."""
    cg_iters: int = _bounded(10, min=1)
    """Conjugate-gradient iterations solving F s = g."""
    cg_damping: float = _bounded(0.1, min=0.0, float32=True)
    """λ added to the Fisher-vector products (F + λI)."""
    line_search_steps: int = _bounded(10, min=1)
    """Candidates the backtracking line search tries before rejecting the step."""
    line_search_backtrack: float = _bounded(0.8, gt=0.0, lt=1.0, float32=True)
    """Factor the step shrinks by per candidate."""
    # Fraction of the batch the Fisher-vector products see: a fresh random subset each
    # update (0.2 makes the policy step ~2.5x faster at 1-2k samples; gradient and line
    # search always use the whole batch).
    fvp_subsample: float = _bounded(1.0, gt=0.0, max=1.0)
    jit_compile: bool = False
    """Compile the update with XLA: ~1.3x faster per update on CPU, but the first call
    costs 2–4 s more; worth it from a few hundred iterations on."""
    entropy_coef: float = _bounded(0.0, min=0.0, float32=True)
    """c: the surrogate becomes mean[π_θ/β · Â] + c · mean[H(π_θ(·|s))], rewarding
    exploration (the trust region and line search apply to it unchanged). 0, the
    default, is TRPO's surrogate; with advantages normalized, 0.001–0.01 is the usual
    range."""
    held_out_check: bool = False
    """Skip an update whose direction, fitted on one half of the batch (the first or the
    second half of its steps), does not improve the surrogate on the other half, both
    ways summed: a step fitted to noise in Â. Two more CG solves per update. Off, the
    default, is TRPO's step."""
    behavior_correction: bool = True
    """Divide by the stored β(a|s) of the policy that collected the data (stale with
    async workers); off: by π_old, as if the data were on-policy."""
    overlap_value_fit: bool = True
    """Fit V(s) in a background thread while the next rollout runs (same results)."""
    fvp: str = _bounded("gauss_newton", choices=("gauss_newton", "hessian"))
    """How Fisher-vector products are computed: ``gauss_newton`` (Jᵀ H J v, forward and
    reverse pass) or ``hessian`` (double back-propagation of the mean KL); equal at θ_old."""
    bptt_length: int = _bounded(16, min=1, max=4096)
    """L, the steps of each training sequence of a recurrent policy (``lstm``, ``gru``):
    π_θ is unrolled over L steps from the state recorded at collection, and gradients
    stop at sequence starts (truncated back-propagation through time). It must divide
    the steps per env, ``trainer.steps_per_iteration / env.n_envs``. Memoryless networks
    ignore it."""
    threads: int = _bounded(1, min=0, max=1024)
    """Threads for TensorFlow (intra- and inter-op) and numpy's BLAS during training;
    0 keeps the libraries' defaults. Small MLP updates run fastest on one. At most 1,024."""
    graph_optimizer: bool = False
    """TensorFlow's graph optimizer (grappler) on the compiled functions. Off: it cost
    0.3–0.5 s on each function's first call and did not make the update faster."""


@dataclass(frozen=True)
class RunnerConfig:
    """``runner:`` — who collects rollouts (see docs/async.md)."""

    kind: str = _bounded("sync", choices=("sync", "async", "ray"))
    """sync: the learner steps the envs; async: worker processes; ray: Ray actors."""
    workers: int = _bounded(2, min=1)
    """Rollout workers (async/ray); ``env.n_envs`` must be a multiple."""
    max_policy_lag: int = _bounded(1, min=0)
    """Data older than ``policy_version − max_policy_lag`` is dropped (async/ray)."""
    address: str = "local"
    """ray: ``local`` (private instance), ``auto`` (running cluster) or an address."""
    connect_timeout_s: float = _bounded(30.0, gt=0.0, max=3600.0)
    """ray: seconds joining a cluster (``address`` other than local) may take before
    it is an error naming the address (docs/distributed.md)."""
    auth_token_file: str | None = None
    """ray: a file holding the cluster's authentication token (``ray get-auth-token``
    on the head node prints it); null: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token when there is one. A path, never the token itself: the
    experiment is copied into the run directory and the trackers."""


@dataclass(frozen=True)
class EvalConfig:
    """``eval:`` — periodic deterministic evaluation."""

    every: int = _bounded(10, min=1)
    """Iterations between deterministic evaluations (and the last iteration)."""
    episodes: int = _bounded(10, min=1)
    """Episodes per evaluation, from fixed start states (seed + 10,000)."""
    keep_best: bool = True
    """Keep the policy of the best evaluation in RUN_DIR/best (with its own export)."""
    stochastic: bool = False
    """Also evaluate the stochastic policy (eval_return_stochastic), same start states."""


@dataclass(frozen=True)
class WandbConfig:
    """``tracking.wandb:`` — Weights & Biases run settings."""

    enabled: bool = False
    """Log metrics, the summary and the run directory's files to W&B (``--wandb``)."""
    project: str = "trpo-tf"
    """The W&B project."""
    mode: str = _bounded("offline", choices=("online", "offline", "disabled"))
    """``offline`` writes under RUN_DIR/wandb to sync later (``wandb sync``)."""
    entity: str | None = None
    """The W&B team or user (null: your default)."""
    tags: tuple[str, ...] = ()
    """Tags of the W&B run."""
    group: str | None = None
    """Run group; ``null`` groups by the experiment name so seeds aggregate."""
    name: str | None = None
    """Run name; ``null`` uses the run directory's name."""
    init_timeout: float = _bounded(30.0, gt=0.0, max=86_400.0)
    """Seconds ``wandb.init`` may take before W&B is given up for this run (at most a
    day: timeouts beyond what threads can wait on overflow)."""


@dataclass(frozen=True)
class TrackingConfig:
    """``tracking:`` — where metrics go besides the run directory."""

    wandb: WandbConfig = field(default_factory=WandbConfig)
    tensorboard: bool = True
    """Also write TensorBoard event files to ``RUN_DIR/tensorboard``."""
    plugins: dict[str, Any] = field(default_factory=dict)
    """Tracker plug-ins (entry-point group ``trpo_tf.trackers``) by name, each with its
    keyword arguments or empty, e.g. ``{mlflow: {uri: http://...}}``."""


@dataclass(frozen=True)
class CheckpointConfig:
    """``checkpoint:`` — periodic checkpoints for ``trpo-tf train --resume``."""

    every: int = _bounded(0, min=0)
    """Write one after every iteration whose number is a multiple of this (0: off)."""
    every_s: float = _bounded(60.0, min=0.0)
    """Write one after the first iteration that ends this many seconds of training after
    the previous checkpoint (or the start); 0: off. Either trigger writes one; with both
    off, checkpoints are written only at the end and on Ctrl-C. By time, a checkpoint's
    cost is bounded against the training it protects (a 5-second run writes none, an
    hour-long one sixty)."""
    keep: int = _bounded(3, min=1)
    """How many of the newest checkpoints to keep."""


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole experiment, as resolved from YAML plus ``--set`` overrides."""

    name: str = _bounded("experiment", path_component=True)
    """Names the run directory (``runs/<name>-s<seed>-<time>``), so it must be a single
    path component: no ``/`` or ``\\``, not ``.`` or ``..``, printable, at most
    :data:`MAX_NAME_BYTES` bytes."""
    seed: int = _bounded(0, min=0, max=SEED_MAX)
    """Seeds TensorFlow, numpy and the envs; ``0 <= seed < 2**32``."""
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    value: ValueConfig = field(default_factory=ValueConfig)
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
