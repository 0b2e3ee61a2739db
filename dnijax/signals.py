"""Signal rules: what gradient signal each layer gets in one step (backprop, DNI, yours).

A signal rule is one pure function ``rule(net, sg, x, y, net_spec, sg_spec) ->
Signals``: given the parameters at the start of a step and a batch, it returns
every gradient signal of that step, computed from those parameters alone
(``docs/math.md``, "Synchronous steps"). Noise, optimisers, the asynchronous gate
and freezing are the update rule's business (:mod:`dnijax.updates`). Rules live
in a registry: :func:`register` adds one, and the regimes ``name`` and
``name+noise`` then exist for :class:`~dnijax.config.RunConfig`.

The DNI signals come from one scalar built out of stop_gradient-isolated terms
and a single ``jax.grad``:

* for each block i in S, ``reduce_b <h_i(theta_i; sg(h_{i-1})), sg(d_i)>`` (the inner
  product over every axis of an example): its gradient w.r.t. ``theta_i`` is
  ``reduce_b (dh_i/dtheta_i)^T d_i``;
* for a block outside S (the output block, paper topology), the true loss with
  the block's input held constant;
* the SG regression loss ``sum_i reduce_b 0.5 ||d_i - sg(t_i)||^2`` with
  ``d_i = M_i(sg(h_i))``, whose gradient w.r.t. ``phi_i`` trains the modules.

Every block (:mod:`dnijax.layers`; for an MLP, a layer) sees its input through
``stop_gradient``, so no signal crosses a block boundary.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import nets, synthetic, signals
  >>> spec = nets.mlp_spec((2, 5, 5, 1), ("tanh", "tanh", "sigmoid"), "mse", "mean",
  ...                      init="glorot")
  >>> sgspec = synthetic.SGSpec("paper")
  >>> params = nets.init_network(jax.random.key(0), spec)
  >>> sgs = synthetic.init_sg_modules(jax.random.key(1), nets.block_shapes(spec), sgspec, 1)
  >>> x, y = jnp.ones((4, 2)), jnp.zeros((4, 1))
  >>> s = signals.dni_signals(params, sgs, x, y, spec, sgspec)
  >>> float(jnp.abs(s.net_grads[0]["w"]).max())  # a zero-init SG drives layer 1
  0.0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import feedback as feedback_rules
from dnijax import layers, nets, recurrent, registry, synthetic

sg = jax.lax.stop_gradient


class Signals(NamedTuple):
    """Everything one step computes before the optimiser.

    Attributes:
      net_grads: gradient signal for each network layer (same tree as the params).
      sg_grads: gradient of the SG loss for each SG module (``None`` without DNI).
      loss: the batch loss ``J`` at the start of the step.
      output: the network's output ``h_L`` on the batch.
      sg_loss: the SG regression loss of each module in S, shape ``(|S|,)``.
    """

    net_grads: Any
    sg_grads: Any
    loss: jax.Array
    output: jax.Array
    sg_loss: jax.Array


def backprop_signals(
    params: nets.Params,
    sg_params: Any,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: Any = None,
) -> Signals:
    """Rule ``backprop``: ``g = grad_theta J(theta)`` (``docs/math.md``, "Backprop")."""

    def objective(p):
        out = nets.predict(p, x, spec)
        return nets.reduce_batch(nets.per_example_loss(out, y, spec.loss), spec.reduction), out

    (loss, out), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return Signals(grads, None, loss, out, jnp.zeros((0,), loss.dtype))


def _input_vjp(
    params: dict[str, jax.Array], h_in: jax.Array, block: layers.Block, cotangent: jax.Array
) -> jax.Array:
    """``(dh_out/dh_in)^T cotangent`` per example, through one block with frozen params."""
    frozen = jax.tree.map(sg, params)
    _, vjp = jax.vjp(lambda h: layers.apply_block(frozen, h, block), sg(h_in))
    return sg(vjp(sg(cotangent))[0])


def dni_signals(
    params: nets.Params,
    sg_params: synthetic.SGParams,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: synthetic.SGSpec,
) -> Signals:
    """Rule ``dni``: block updates from synthetic gradients, SG modules regressed
    on bootstrapped (or, next to the output, true) per-example gradients
    (``docs/math.md``, "Synthetic gradients (DNI)")."""
    n = len(params)
    in_s = synthetic.sg_layers(n, sg_spec.topology)
    blocks = spec.blocks
    cond = y if sg_spec.conditioned else None
    reduce = lambda v: nets.reduce_batch(v, spec.reduction)  # noqa: E731
    # sg_target "batch": the modules estimate dJ/dh_i, c times the per-example gradient
    # (c = 1/B under mean): the true output gradient is scaled by c and a block's update
    # sums over the batch (docs/math.md, "SG target scale")
    batch = sg_spec.target == "batch"
    scale = 1.0 / x.shape[0] if batch and spec.reduction == "mean" else 1.0
    drive = (lambda v: jnp.sum(v, axis=0)) if batch else reduce
    a = sg_spec.scale  # a synthetic gradient is used as a * d_i (docs/math.md, "SG scale")

    def objective(theta, phi):
        # Block inputs are constants: each block's output depends on its own params only.
        hs = [x]
        for p, block in zip(theta, blocks, strict=True):
            hs.append(layers.apply_block(p, sg(hs[-1]), block))
        out = hs[-1]
        loss = reduce(nets.per_example_loss(out, y, spec.loss))
        # The true per-example output gradient dl_b/dh_L (reduction "sum" keeps it per example).
        e_out = (
            sg(jax.grad(lambda o: jnp.sum(nets.per_example_loss(o, y, spec.loss)))(sg(out))) * scale
        )
        d: list[Any] = [  # None outside S
            synthetic.apply_sg(phi[i], sg(hs[i + 1]), cond) if in_s[i] else None for i in range(n)
        ]

        total = jnp.zeros((), out.dtype)
        sg_losses = []
        for i in range(n):
            if not in_s[i]:
                total = total + loss  # only the output block can be outside S
                continue
            total = total + drive(nets.per_example_sum(hs[i + 1] * sg(a * d[i])))
            if i == n - 1:
                target = e_out
            else:
                target = _input_vjp(
                    theta[i + 1], hs[i + 1], blocks[i + 1], a * d[i + 1] if in_s[i + 1] else e_out
                )
            sg_loss = reduce(0.5 * nets.per_example_sum((d[i] - sg(target)) ** 2))
            sg_losses.append(sg_loss)
            total = total + sg_loss
        sg_loss_vec = jnp.stack(sg_losses) if sg_losses else jnp.zeros((0,), out.dtype)
        return total, (loss, out, sg_loss_vec)

    grads, (loss, out, sg_losses) = jax.grad(objective, argnums=(0, 1), has_aux=True)(
        params, sg_params
    )
    return Signals(grads[0], grads[1], sg(loss), out, sg(sg_losses))


def sg_alignment(
    params: nets.Params,
    sg_params: synthetic.SGParams,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: synthetic.SGSpec,
) -> jax.Array:
    """How well each SG module predicts the true gradient: for every block i in S, the
    cosine between ``d_i = M_i(h_i)`` and the true per-example gradient ``dl_b/dh_i``
    (by backprop through the whole network), averaged over the batch; shape ``(|S|,)``.
    A zero synthetic or true gradient counts as cosine 0."""
    in_s = synthetic.sg_layers(len(params), sg_spec.topology)
    hs = nets.forward(params, x, spec)
    cond = y if sg_spec.conditioned else None

    def total_loss(shifts):  # a zero shift added to each h_i: its gradient is dl_b/dh_i
        h = x
        for p, block, shift in zip(params, spec.blocks, shifts, strict=True):
            h = layers.apply_block(p, h, block) + shift
        return jnp.sum(nets.per_example_loss(h, y, spec.loss))

    true = jax.grad(total_loss)([jnp.zeros_like(h) for h in hs[1:]])
    cosines = []
    for i, carries in enumerate(in_s):
        if not carries:
            continue
        d = synthetic.apply_sg(sg_params[i], hs[i + 1], cond)
        dot = nets.per_example_sum(d * true[i])
        flat = lambda v: v.reshape(v.shape[0], -1)  # noqa: E731
        norms = jnp.linalg.norm(flat(d), axis=-1) * jnp.linalg.norm(flat(true[i]), axis=-1)
        cosines.append(jnp.mean(jnp.where(norms > 0, dot / jnp.where(norms > 0, norms, 1), 0)))
    return jnp.stack(cosines) if cosines else jnp.zeros((0,), x.dtype)


def _without_sg(step: feedback_rules.Step) -> Signals:
    grads, loss, out = step
    return Signals(grads, None, loss, out, jnp.zeros((0,), loss.dtype))


def fa_signals(
    params: nets.Params,
    sg_params: Any,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: Any = None,
    *,
    feedback: feedback_rules.Feedback,
) -> Signals:
    """Rule ``fa``, feedback alignment: :func:`dnijax.feedback.fa` with the run's fixed
    matrices ``feedback`` (:func:`dnijax.feedback.init_fa`)."""
    return _without_sg(feedback_rules.fa(params, x, y, spec, feedback))


def dfa_signals(
    params: nets.Params,
    sg_params: Any,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: Any = None,
    *,
    feedback: feedback_rules.Feedback,
) -> Signals:
    """Rule ``dfa``, direct feedback alignment: :func:`dnijax.feedback.dfa` with the run's
    fixed matrices ``feedback`` (:func:`dnijax.feedback.init_dfa`)."""
    return _without_sg(feedback_rules.dfa(params, x, y, spec, feedback))


def fwdgrad_signals(
    params: nets.Params,
    sg_params: Any,
    x: jax.Array,
    y: jax.Array,
    spec: nets.NetSpec,
    sg_spec: Any = None,
    *,
    key: jax.Array,
) -> Signals:
    """Rule ``fwdgrad``, forward gradient: :func:`dnijax.feedback.fwdgrad` along the
    direction the step's ``key`` draws."""
    return _without_sg(feedback_rules.fwdgrad(params, x, y, spec, key))


Rule = Callable[..., Signals]
RecurrentRule = Callable[..., recurrent.WindowSignals]
FeedbackInit = Callable[[jax.Array, nets.NetSpec, Any], Any]


class SignalRule(NamedTuple):
    """A registered rule.

    Attributes:
      fn: the feed-forward form, ``fn(net, sg, x, y, net_spec, sg_spec, **extra) ->
        Signals``; ``extra`` holds ``feedback=`` (with :attr:`init_feedback`) and ``key=``
        (when :attr:`stochastic`).
      uses_sg: whether it trains SG modules.
      recurrent: the recurrent form at the truncation boundary, ``recurrent(net, sg,
        window, spec) -> recurrent.WindowSignals`` with a :class:`~dnijax.recurrent.Window`
        and a :class:`~dnijax.recurrent.WindowSpec` (``None``: the rule cannot train a
        recurrent net).
      init_feedback: ``(key, net_spec, dtype) -> tree``, the rule's fixed parameters
        (feedback matrices), drawn once per run, kept in
        :attr:`dnijax.train.TrainState.feedback`, never updated; ``None``: it has none.
      stochastic: whether ``fn`` takes the step's PRNG ``key`` (``fwdgrad``'s direction).
    """

    fn: Rule
    uses_sg: bool
    recurrent: RecurrentRule | None = None
    init_feedback: FeedbackInit | None = None
    stochastic: bool = False


RULES: dict[str, SignalRule] = {
    "backprop": SignalRule(backprop_signals, False, recurrent.backprop_window),
    "dni": SignalRule(dni_signals, True, recurrent.dni_window),
    "fa": SignalRule(fa_signals, False, init_feedback=feedback_rules.init_fa),
    "dfa": SignalRule(dfa_signals, False, init_feedback=feedback_rules.init_dfa),
    "fwdgrad": SignalRule(fwdgrad_signals, False, stochastic=True),
}
BUILTIN_RULES = tuple(RULES)


def register(
    name: str,
    fn: Rule,
    *,
    uses_sg: bool = False,
    recurrent: RecurrentRule | None = None,
    init_feedback: FeedbackInit | None = None,
    stochastic: bool = False,
) -> None:
    """Adds the signal rule ``name`` (regimes ``name`` and ``name+noise``).

    Args:
      name: the rule's name; letters, digits, ``_`` and ``-`` (no ``+``); not a built-in's.
      fn: ``fn(net, sg, x, y, net_spec, sg_spec) -> Signals``; ``sg`` and ``sg_spec``
        are ``None`` unless ``uses_sg``.
      uses_sg: whether the rule trains SG modules (built from ``RunConfig``'s SG fields;
        on a recurrent net, the linear module at the window's end).
      recurrent: its recurrent form (see :class:`SignalRule`; :func:`dnijax.recurrent.
        backprop_window` is a model); without one, a recurrent run of the rule is refused.
      init_feedback: draws the rule's fixed matrices, passed to ``fn`` as ``feedback=``
        (:func:`dnijax.feedback.init_fa` is a model).
      stochastic: ``fn`` takes ``key=``, a fresh PRNG key every step.

    Examples:
      >>> from dnijax import signals
      >>> signals.register("plain", signals.backprop_signals)
      >>> "plain" in signals.recurrent_rules()  # RunConfig(task=...) refuses it
      False
      >>> signals.unregister("plain")
    """
    if not name or "+" in name or not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(
            f"signal rule: {name!r} is not a valid name; use letters, digits, '_' or '-'"
        )
    registry.add(
        RULES,
        BUILTIN_RULES,
        "signal rule",
        name,
        SignalRule(fn, uses_sg, recurrent, init_feedback, stochastic),
    )


def unregister(name: str) -> None:
    """Removes a rule added with :func:`register` (built-in rules stay)."""
    registry.remove(RULES, BUILTIN_RULES, name)


def recurrent_rules() -> tuple[str, ...]:
    """The registered rules that have a recurrent form."""
    return tuple(name for name, rule in RULES.items() if rule.recurrent is not None)


def window_signals(
    signal: str,
    params: dict,
    sg_params: dict | None,
    s0: Any,
    x_w: jax.Array,
    y_w: jax.Array,
    loss: str,
    reduction: str,
    *,
    core: str | recurrent.Core = "rnn",
    mask: jax.Array | None = None,
    sg_target: str = "per_example",
    sg_scale: float = 1.0,
) -> recurrent.WindowSignals:
    """The signals of one truncated-BPTT window by rule ``signal``'s recurrent form
    (:mod:`dnijax.recurrent`), from the parameters at the start of the step; ``s0`` is
    held constant.

    Args:
      signal: a rule with a recurrent form (:func:`recurrent_rules`).
      params: the network dict; sg_params: the SG module (``None`` without one).
      s0: the incoming state pytree; x_w, y_w: ``(B, T, d)`` inputs, ``(B, T, K)`` targets.
      loss: a loss name (:data:`dnijax.nets.LOSSES`); reduction: ``mean`` or ``sum``.
      core: a name in :data:`dnijax.recurrent.CORES` or a :class:`~dnijax.recurrent.Core`.
      mask: optional ``(B, T)`` weights of the per-step losses (0 where a step has no
        target, as in the copy tasks).
      sg_target: what the SG module regresses onto (``per_example`` or ``batch``).
      sg_scale: the factor on the synthetic gradient injected at the window's end
        (``docs/math.md``, "SG scale").
    """
    rule = RULES.get(signal)
    if rule is None or rule.recurrent is None:
        raise ValueError(
            f"unknown recurrent signal rule {signal!r}; choose one of "
            f"{', '.join(recurrent_rules())}"
        )
    return rule.recurrent(
        params,
        sg_params,
        recurrent.Window(s0, x_w, y_w, mask),
        recurrent.WindowSpec(recurrent.get_core(core), loss, reduction, sg_target, sg_scale),
    )
