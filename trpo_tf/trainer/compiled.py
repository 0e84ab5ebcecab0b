"""The TRPO update compiled once per run: :class:`TrpoUpdate`.

The algorithm is ``trainer/trpo.py`` (the policy step) and ``trainer/value_fit.py``
(the value fit); this module holds what compiling them takes: the ``tf.function``s
with fixed input signatures, calls through their concrete functions, trace counts,
and a value fit built ahead of its first call. Why each choice was made, with the
measurements, is in ``docs/trainer.md``.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from trpo_tf.networks.rnn import is_recurrent
from trpo_tf.policy import Policy, SequenceInputs
from trpo_tf.trainer.hyperparameters import TrpoHyperparameters
from trpo_tf.trainer.placement import on_accelerator
from trpo_tf.trainer.tracing import traced_without_op_tracebacks
from trpo_tf.trainer.trpo import fisher_batch_size, policy_step
from trpo_tf.trainer.value_fit import GradientOptimizer, fit_value, fit_value_sequences


class TrpoUpdate(tf.Module):
    """Callable that performs one TRPO policy step and one value fit.

    Call with (all ``[batch, ...]`` with a fixed ``batch``):
        observations ``[batch, obs_dim]``, actions ``[batch, *action_shape]``,
        behavior_log_prob ``[batch]`` (log β(a|s) as stored at collection time),
        advantages ``[batch]``, value_targets ``[batch]``.

    Returns a dict of scalar tensors: ``kl, surrogate_improvement,
    line_search_steps, line_search_accepted, skip_reason, grad_norm, entropy,
    value_loss`` plus the head's diagnostics.

    Attributes:
        update: the whole iteration (policy step, then value fit) as one function.
        policy_update: the policy step alone, for a learner that overlaps the value
            fit with the next rollout (the policy step needs only θ, the fit only φ).
        value_fit: the value fit alone; its epoch count is an input, so that a call
            with none builds it without touching φ, Adam or the generator.
    """

    def __init__(
        self,
        policy: Policy,
        value_network: keras.Model,
        value_optimizer: GradientOptimizer,
        hyperparameters: TrpoHyperparameters,
        batch_size: int,
        observation_dim: int,
        seed: int = 0,
        dtype: tf.DType = tf.float32,
        jit_compile: bool = False,
        bptt_length: int = 1,
    ) -> None:
        super().__init__(name="trpo_update")
        self.policy = policy
        self.value_network = value_network
        self.value_optimizer = value_optimizer
        self.hp = hyperparameters
        self.batch_size = int(batch_size)
        self.generator = tf.random.Generator.from_seed(seed)
        self.dtype = dtype
        # δ of the next policy step: read by the compiled step, so that a schedule
        # (trainer/kl_schedule.py) changes it without a retrace. Not checkpointed: the
        # schedule recomputes it from the iteration.
        self.max_kl = tf.Variable(
            hyperparameters.max_kl, dtype=dtype, trainable=False, name="max_kl"
        )
        self.fvp_batch = fisher_batch_size(self.batch_size, hyperparameters.fvp_subsample)
        value_optimizer.build(value_network.trainable_variables)
        self._value_epochs = tf.constant(hyperparameters.value_epochs)
        self._concrete: dict[str, Any] = {}  # by function name
        head = policy.head
        signature = [
            tf.TensorSpec([batch_size, observation_dim], dtype, name="observations"),
            tf.TensorSpec([batch_size, *head.action_shape], head.action_dtype, name="actions"),
            tf.TensorSpec([batch_size], dtype, name="behavior_log_prob"),
            tf.TensorSpec([batch_size], dtype, name="advantages"),
            tf.TensorSpec([batch_size], dtype, name="value_targets"),
        ]

        def compile_function(function: Any, input_signature: list[tf.TensorSpec]) -> Any:
            # Traced without per-operation Python stack traces, so that the first call
            # runs without the GIL beside the learner's other thread (trainer/tracing.py).
            return tf.function(
                traced_without_op_tracebacks(function),
                input_signature=input_signature,
                jit_compile=jit_compile,
                autograph=False,
            )

        epochs_spec = tf.TensorSpec([], tf.int32, "epochs")
        self.value_recurrent = is_recurrent(value_network)
        if self.value_recurrent:
            # V unrolled over sequences of L from the states recorded for them.
            self.value_fit = compile_function(
                self._value_fit_sequences,
                [
                    *self._sequence_specs(
                        batch_size, bptt_length, observation_dim, value_network.state_sizes
                    ),
                    tf.TensorSpec([batch_size // bptt_length, bptt_length], dtype, "targets"),
                    epochs_spec,
                ],
            )
        else:
            self.value_fit = compile_function(
                self._value_fit, [signature[0], signature[4], epochs_spec]
            )
        if policy.recurrent:
            # The policy step sees B = batch / L sequences of L steps, each from the state
            # β had at its start.
            sequence_signature = [
                *self._sequence_specs(batch_size, bptt_length, observation_dim, policy.state_sizes),
                *signature[1:4],
            ]
            self.policy_update = compile_function(self.sequence_policy_step, sequence_signature)
        else:
            self.policy_update = compile_function(self.policy_step, signature[:4])
        self.update = (
            None
            if policy.recurrent or self.value_recurrent
            else compile_function(self._update, signature)
        )

    def _sequence_specs(
        self, batch_size: int, length: int, observation_dim: int, state_sizes: tuple[int, ...]
    ) -> list[Any]:
        """Specs of ``observations [B, L, D]``, ``starts [B, L]``, ``state ([B, size], ...)``."""
        if batch_size % length:
            raise ValueError(f"bptt_length {length} does not divide the batch ({batch_size})")
        sequences = batch_size // length
        return [
            tf.TensorSpec([sequences, length, observation_dim], self.dtype, name="observations"),
            tf.TensorSpec([sequences, length], self.dtype, name="starts"),
            tuple(
                tf.TensorSpec([sequences, size], self.dtype, name=f"state_{index}")
                for index, size in enumerate(state_sizes)
            ),
        ]

    def _functions(self) -> list[Any]:
        return [f for f in (self.update, self.policy_update, self.value_fit) if f is not None]

    def trace_count(self) -> int:
        """Traces of the compiled functions so far (1 per function that was called)."""
        return sum(int(f.experimental_get_tracing_count()) for f in self._functions())

    def retrace_count(self) -> int:
        """Traces beyond the first of each compiled function (0 when shapes are fixed)."""
        return sum(max(0, int(f.experimental_get_tracing_count()) - 1) for f in self._functions())

    def set_max_kl(self, max_kl: float) -> None:
        """δ for the policy steps that follow (> 0; the constructor's is ``hp.max_kl``)."""
        if not max_kl > 0:
            raise ValueError(f"max_kl must be > 0, got {max_kl!r}")
        self.max_kl.assign(max_kl)

    def run_policy_step(self, *arguments: Any) -> dict[str, tf.Tensor]:
        """:attr:`policy_update` on one batch (arrays or tensors of its signature).

        The arguments are ``observations, actions, behavior_log_prob, advantages``;
        for a recurrent policy ``observations, starts, state, actions,
        behavior_log_prob, advantages`` (:meth:`sequence_policy_step`). Called through
        its concrete function (traced here on first use), which skips the
        ``tf.function``'s argument binding and cache lookup. A batch of another shape
        is a ValueError naming the input, never a retrace.
        """
        return self._call_concrete(self.policy_update, *arguments)

    def value_update(self, *inputs: Any) -> tf.Tensor:
        """Fit V_φ for ``value_epochs``; the last epoch's MSE.

        ``inputs`` are ``observations [batch, obs_dim], value_targets [batch]``; for a
        recurrent V ``observations [B, L, obs_dim], starts [B, L], state, value_targets
        [B, L]`` (:func:`~trpo_tf.trainer.value_fit.fit_value_sequences`). Called like
        :meth:`run_policy_step`, through the fit's concrete function.
        """
        return self._call_concrete(self.value_fit, *inputs, self._value_epochs)

    def _call_concrete(self, function: Any, *arguments: Any) -> Any:
        """``function`` (one of this update's ``tf.function``s) through its concrete
        function, traced on first use; each argument converted to its spec's dtype
        and checked against its shape (a concrete function does not check them)."""
        name = function.python_function.__name__
        concrete = self._concrete.get(name)
        if concrete is None:
            concrete = self._concrete[name] = function.get_concrete_function()

        def convert(argument: Any, spec: tf.TensorSpec) -> tf.Tensor:
            tensor = tf.convert_to_tensor(argument, spec.dtype)
            if not spec.shape.is_compatible_with(tensor.shape):
                raise ValueError(
                    f"{name}: {spec.name} has shape {tensor.shape}, this update was built "
                    f"for {spec.shape} (batch_size={self.batch_size})"
                )
            return tensor

        if len(arguments) != len(function.input_signature):
            raise ValueError(
                f"{name}: {len(arguments)} arguments, its signature has "
                f"{len(function.input_signature)}"
            )
        tensors = [
            tuple(map(convert, argument, spec))
            if isinstance(spec, tuple)
            else convert(argument, spec)
            for argument, spec in zip(arguments, function.input_signature, strict=True)
        ]
        return concrete(*tensors)

    def prepare_value_fit(self) -> None:
        """Trace and instantiate the compiled value fit, changing no state.

        Calls it for zero epochs: no Adam step, no draw from the generator.
        """
        *inputs, _ = self.value_fit.input_signature
        self.value_fit(
            *tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype), inputs),
            tf.constant(0),
        )

    def policy_step(
        self,
        observations: tf.Tensor,
        actions: tf.Tensor,
        behavior_log_prob: tf.Tensor,
        advantages: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """:func:`~trpo_tf.trainer.trpo.policy_step` with this update's policy and constants."""
        return policy_step(
            self.policy,
            self.hp,
            self.generator,
            observations,
            actions,
            behavior_log_prob,
            advantages,
            max_kl=self.max_kl,
            # With θ on a GPU, CG runs all its iterations without reading its residual
            # back to the host each time (the same result); on the CPU it stops early.
            cg_early_exit=not on_accelerator(self.policy.policy_variables),
        )

    def sequence_policy_step(
        self,
        observations: tf.Tensor,
        starts: tf.Tensor,
        state: tuple[tf.Tensor, ...],
        actions: tf.Tensor,
        behavior_log_prob: tf.Tensor,
        advantages: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """The policy step of a recurrent policy on ``B`` sequences of ``L`` steps.

        ``observations [B, L, obs_dim]``, ``starts [B, L]``, ``state`` ``([B, size],
        ...)`` (β's state at each sequence's start); ``actions``, ``behavior_log_prob``
        and ``advantages`` per step ``[B·L, ...]`` in sequence-major order.
        """
        return self.policy_step(
            SequenceInputs(observations, starts, tuple(state)),
            actions,
            behavior_log_prob,
            advantages,
        )

    def _value_fit(self, observations, value_targets, epochs=None):
        return fit_value(
            self.value_network,
            self.value_optimizer,
            self.generator,
            observations,
            value_targets,
            self.hp.value_epochs if epochs is None else epochs,
            self.hp.value_minibatch_size,
        )

    def _value_fit_sequences(self, observations, starts, state, value_targets, epochs):
        length = int(observations.shape[1])
        return fit_value_sequences(
            self.value_network,
            self.value_optimizer,
            self.generator,
            observations,
            starts,
            tuple(state),
            value_targets,
            epochs,
            max(1, self.hp.value_minibatch_size // length),
        )

    def _update(self, observations, actions, behavior_log_prob, advantages, value_targets):
        metrics = self.policy_step(observations, actions, behavior_log_prob, advantages)
        metrics["value_loss"] = self._value_fit(observations, value_targets)
        return metrics
