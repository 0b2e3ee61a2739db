"""The hand-derived layers, blocks, SG modules and conv networks of the numpy reference
against central finite differences, in float64 (``docs/math.md``, "Layers by hand:
convolution and pooling")."""

import itertools

import numpy as np
import pytest

from dnijax import layers
from dnijax.reference import layers as rl
from dnijax.reference import mlp as ref

TOL = 1e-7
EPS = 1e-6


def numeric_grad(f, a: np.ndarray) -> np.ndarray:
    """``df/da`` by central differences, ``a`` perturbed in place and restored."""
    grad = np.zeros_like(a)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + EPS
        up = f()
        a[idx] = old - EPS
        down = f()
        a[idx] = old
        grad[idx] = (up - down) / (2 * EPS)
    return grad


def assert_close(got: np.ndarray, want: np.ndarray, tol: float = TOL):
    assert got.shape == want.shape
    err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)
    assert err <= tol, err


def blocks_of(specs):
    return layers.group_blocks(specs, [layers.is_weighted(s.kind) for s in specs])


def weights(rng, shapes: dict) -> dict:
    return {k: 0.5 * rng.randn(*s) for k, s in shapes.items()}


def check_backward(forward, backward, params: dict, h: np.ndarray, rng):
    """Param and input gradients of ``sum(out * G)`` for a random cotangent ``G``, from
    ``backward(cache, G)``, against central differences of ``forward(params, h)``."""
    out, cache = forward(params, h)
    cot = rng.randn(*out.shape)
    grads, grad_in = backward(cache, cot)

    def objective():
        return np.sum(forward(params, h)[0] * cot)

    assert_close(grad_in, numeric_grad(objective, h))
    assert sorted(grads) == sorted(params)
    for k in params:
        assert_close(grads[k], numeric_grad(objective, params[k]))
    return out


def check_layer(spec, params: dict, h: np.ndarray, rng):
    """:func:`check_backward` of one layer."""
    return check_backward(
        lambda p, x: rl.layer_forward(spec, p, x), rl.layer_backward, params, h, rng
    )


# ---------------------------------------------------------------- one layer
@pytest.mark.parametrize("bias", [True, False])
def test_dense(bias):
    rng = np.random.RandomState(0)
    params = weights(rng, {"w": (4, 3), **({"b": (3,)} if bias else {})})
    check_layer(layers.spec("dense", features=3), params, rng.randn(5, 4), rng)


CONV_CASES = [(k, s, size) for k, s, size in itertools.product((1, 2, 3, 5), (1, 2), (5, 6))]


@pytest.mark.parametrize("kernel,stride,size", CONV_CASES)
def test_conv2d(kernel, stride, size):
    rng = np.random.RandomState(kernel * 10 + stride + size)
    params = weights(rng, {"w": (kernel, kernel, 2, 3), "b": (3,)})
    h = rng.randn(2, size, size - 1, 2)  # odd and even height and width at once
    out = check_layer(
        layers.spec("conv2d", features=3, kernel=kernel, stride=stride), params, h, rng
    )
    assert out.shape == (2, -(-size // stride), -(-(size - 1) // stride), 3)


def test_conv2d_is_a_cross_correlation_with_xla_same_padding():
    """Kernel 2 on 3 pixels: one padding unit, on the high side; no kernel flip."""
    h = np.arange(3.0).reshape(1, 3, 1, 1)
    w = np.array([1.0, 10.0]).reshape(2, 1, 1, 1)  # out_i = h_i + 10 h_{i+1}
    out, _ = rl.conv2d_forward({"w": w}, h)
    np.testing.assert_array_equal(out.ravel(), [0 + 10 * 1, 1 + 10 * 2, 2 + 0])
    assert rl.same_padding(3, 2, 1) == (3, 0, 1)
    assert rl.same_padding(6, 5, 2) == (3, 1, 2)
    assert rl.same_padding(6, 1, 4) == (2, 0, 0)


def test_conv2d_kernel_must_match_its_spec():
    with pytest.raises(ValueError, match="kernel"):
        rl.layer_forward(
            layers.spec("conv2d", features=1), {"w": np.ones((5, 5, 1, 1))}, np.ones((1, 4, 4, 1))
        )


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("window,stride", [(2, None), (3, 1), (2, 3)])
def test_pools(kind, window, stride):
    rng = np.random.RandomState(window + (stride or 0))
    options = dict(window=window) if stride is None else dict(window=window, stride=stride)
    h = rng.randn(2, 7, 6, 2)
    out = check_layer(layers.spec(kind, **options), {}, h, rng)
    step = stride or window
    assert out.shape == (2, (7 - window) // step + 1, (6 - window) // step + 1, 2)


def first_max_rule(h, cot, window, stride):
    """Each window's cotangent to its first maximal pixel, row-major, one by one."""
    grad = np.zeros_like(h)
    for b, i, j, c in np.ndindex(cot.shape):
        patch = h[b, i * stride : i * stride + window, j * stride : j * stride + window, c]
        di, dj = np.unravel_index(np.argmax(patch), patch.shape)  # argmax: first of ties
        grad[b, i * stride + di, j * stride + dj, c] += cot[b, i, j, c]
    return grad


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 1)])
def test_max_pool_ties_go_to_the_first_maximum(window, stride):
    rng = np.random.RandomState(3)
    spec = layers.spec("max_pool", window=window, stride=stride)
    h = rng.randint(0, 3, (2, 6, 7, 2)).astype(float)  # many ties
    out, cache = rl.layer_forward(spec, {}, h)
    cot = rng.randn(*out.shape)
    np.testing.assert_allclose(
        rl.layer_backward(cache, cot)[1], first_max_rule(h, cot, window, stride), rtol=0, atol=1e-15
    )
    # all zeros: every window's gradient to its top-left pixel; overlaps add up
    zeros = np.zeros((1, 4, 4, 1))
    out, cache = rl.layer_forward(layers.spec("max_pool", window=3, stride=1), {}, zeros)
    grad = rl.layer_backward(cache, np.ones_like(out))[1][0, :, :, 0]
    np.testing.assert_array_equal(grad, [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])


def test_flatten_and_reshape():
    rng = np.random.RandomState(4)
    h = rng.randn(3, 2, 3, 4)
    out = check_layer(layers.spec("flatten"), {}, h, rng)
    np.testing.assert_array_equal(out, h.reshape(3, 24))  # row-major
    out = check_layer(layers.spec("reshape", shape=(4, 3, 2)), {}, out, rng)
    np.testing.assert_array_equal(out, h.reshape(3, 4, 3, 2))


@pytest.mark.parametrize("name", rl.ACTIVATIONS)
def test_activations(name):
    rng = np.random.RandomState(5)
    check_layer(layers.spec(name), {}, rng.randn(2, 3, 3, 2), rng)


def test_relu_has_slope_zero_at_zero():
    _, cache = rl.layer_forward(layers.spec("relu"), {}, np.zeros((1, 2)))
    np.testing.assert_array_equal(rl.layer_backward(cache, np.ones((1, 2)))[1], 0.0)


def test_other_kinds_are_refused():
    with pytest.raises(ValueError, match="'scale'.*built-in kinds only"):
        rl.layer_forward(layers.spec("scale", factor=2.0), {}, np.ones((1, 2)))


# ---------------------------------------------------------------- a block, SG modules
def test_a_block():
    rng = np.random.RandomState(6)
    specs = (
        layers.spec("reshape", shape=(5, 4, 2)),
        layers.spec("conv2d", features=3),
        layers.spec("tanh"),
        layers.spec("max_pool", window=2),
        layers.spec("flatten"),
    )
    (block,) = blocks_of(specs)
    params = weights(rng, {"w": (3, 3, 2, 3), "b": (3,)})
    check_backward(
        lambda p, x: rl.block_forward(p, x, block), rl.block_backward, params, rng.randn(2, 40), rng
    )


@pytest.mark.parametrize("conditioned", [False, True])
@pytest.mark.parametrize("image", [False, True])
def test_sg_modules(conditioned, image):
    rng = np.random.RandomState(7)
    n_cls, shape = 2, ((4, 5, 3) if image else (3,))
    n_in = shape[-1] + (n_cls if conditioned else 0)
    if image:  # conv 3x3 (ReLU), conv 1x1 (linear), back to the block's channels
        module = [
            weights(rng, {"w": (3, 3, n_in, 4), "b": (4,)}),
            weights(rng, {"w": (1, 1, 4, shape[-1])}),
        ]
    else:
        module = [
            weights(rng, {"w": (n_in, 4), "b": (4,)}),
            weights(rng, {"w": (4, shape[-1]), "b": (shape[-1],)}),
        ]
    h = rng.randn(2, *shape)
    cond = np.eye(n_cls)[[0, 1]] if conditioned else None
    d, cache = rl.sg_forward(module, h, cond)
    assert d.shape == h.shape
    cot = rng.randn(*d.shape)
    grads = rl.sg_backward(cache, cot)
    for layer, grad in zip(module, grads, strict=True):
        for k in layer:
            assert_close(
                grad[k],
                numeric_grad(lambda: np.sum(rl.sg_forward(module, h, cond)[0] * cot), layer[k]),
            )


def test_label_channels_repeat_the_target_over_every_pixel():
    h, y = np.zeros((2, 3, 4, 1)), np.array([[1.0, 0.0], [0.0, 1.0]])
    a = rl.sg_input(h, y)
    assert a.shape == (2, 3, 4, 3)
    np.testing.assert_array_equal(a[:, :, :, 1:], np.broadcast_to(y[:, None, None], (2, 3, 4, 2)))


# ---------------------------------------------------------------- a conv network
CONV_NET = (
    layers.spec("reshape", shape=(6, 6, 1)),
    layers.spec("conv2d", features=3),
    layers.spec("relu"),
    layers.spec("max_pool", window=2),
    layers.spec("conv2d", features=4, kernel=2),
    layers.spec("tanh"),
    layers.spec("avg_pool", window=2, stride=1),
    layers.spec("flatten"),
    layers.spec("dense", features=3),
    layers.spec("sigmoid"),
)


def conv_net(rng):
    params = [
        weights(rng, {"w": (3, 3, 1, 3), "b": (3,)}),
        weights(rng, {"w": (2, 2, 3, 4), "b": (4,)}),
        weights(rng, {"w": (16, 3), "b": (3,)}),
    ]
    x = rng.randn(3, 36)
    y = np.eye(3)[[0, 2, 1]]
    return blocks_of(CONV_NET), params, x, y


@pytest.mark.parametrize("loss,reduction", [("mse", "sum"), ("xent", "mean"), ("bce", "mean")])
def test_backprop_through_a_conv_network(loss, reduction):
    rng = np.random.RandomState(8)
    blocks, params, x, y = conv_net(rng)
    assert [len(b.layers) for b in blocks] == [4, 4, 2]
    j, grads = ref.backprop_grads(params, x, y, blocks, loss, reduction)

    def objective():
        return ref.backprop_grads(params, x, y, blocks, loss, reduction)[0]

    for p, g in zip(params, grads, strict=True):
        for k in p:
            assert_close(g[k], numeric_grad(objective, p[k]))


def test_the_logit_losses_skip_the_final_activation():
    blocks = blocks_of(CONV_NET)
    assert ref.effective_blocks(blocks, "mse") == blocks
    last = ref.effective_blocks(blocks, "xent")[-1].layers
    assert [s.kind for s in last] == ["dense", "identity"]


def sg_modules(rng, conditioned: bool, n_cls: int):
    """A conv module on the image block 1 (3x3 ReLU, then 1x1), dense ones on the
    vector blocks 2 (its output flattened) and 3."""
    k = n_cls if conditioned else 0
    return [
        [
            weights(rng, {"w": (3, 3, 3 + k, 2), "b": (2,)}),
            weights(rng, {"w": (1, 1, 2, 3), "b": (3,)}),
        ],
        [weights(rng, {"w": (16 + k, 16), "b": (16,)})],
        [weights(rng, {"w": (3 + k, 3), "b": (3,)})],
    ]


@pytest.mark.parametrize("topology,conditioned", [("seed", True), ("paper", False)])
def test_dni_signals_of_a_conv_network(topology, conditioned):
    """Each block's update is ``c <f_i(theta_i; h_{i-1}), d_i>`` differentiated; each
    target the input-VJP of the next block, by differences; each module's gradient
    the derivative of its own SG loss."""
    rng = np.random.RandomState(9)
    blocks, params, x, y = conv_net(rng)
    sgs = sg_modules(rng, conditioned, y.shape[1])
    if topology == "paper":
        sgs[-1] = None
    loss, reduction, c = "xent", "mean", 1.0 / x.shape[0]
    eff = ref.effective_blocks(blocks, loss)
    j, net_grads, sg_grads, sg_losses = ref.dni_grads(
        params, sgs, x, y, blocks, loss, reduction, topology, conditioned
    )
    hs, _ = ref.forward(params, x, eff)
    _, e = ref.loss_and_output_grad(hs[-1], y, loss)
    cond = y if conditioned else None
    d = [
        None if m is None else rl.sg_forward(m, h, cond)[0]
        for m, h in zip(sgs, hs[1:], strict=True)
    ]
    cot = [e if di is None else di for di in d]
    for i, p in enumerate(params):

        def inner(p=p, i=i):
            return c * np.sum(rl.block_forward(p, hs[i], eff[i])[0] * cot[i])

        for k in p:
            assert_close(net_grads[i][k], numeric_grad(inner, p[k]))
    # the output block outside S learns exactly as under backprop
    _, bp = ref.backprop_grads(params, x, y, blocks, loss, reduction)
    if topology == "paper":
        for k in params[-1]:
            assert_close(net_grads[-1][k], bp[-1][k], 1e-12)
    targets = []
    for i in range(len(params) - 1):
        h_in = hs[i + 1].copy()
        targets.append(
            numeric_grad(
                lambda h_in=h_in, i=i: np.sum(
                    rl.block_forward(params[i + 1], h_in, eff[i + 1])[0] * cot[i + 1]
                ),
                h_in,
            )
        )
    targets.append(e)
    in_s = [m is not None for m in sgs]
    want = [c * 0.5 * np.sum((d[i] - targets[i]) ** 2) for i in range(3) if in_s[i]]
    np.testing.assert_allclose(sg_losses, want, rtol=1e-7)
    for i in range(3):
        if not in_s[i]:
            assert sg_grads[i] is None
            continue
        n = sum(in_s[:i])
        for layer, grad in zip(sgs[i], sg_grads[i], strict=True):
            for k in layer:
                assert_close(
                    grad[k],
                    numeric_grad(
                        lambda n=n: ref.dni_grads(
                            params, sgs, x, y, blocks, loss, reduction, topology, conditioned
                        )[3][n],
                        layer[k],
                    ),
                    1e-6,
                )


def test_the_reference_imports_numpy_only():
    """Every module of ``dnijax.reference`` imports numpy, typing helpers and the reference
    modules below it, nothing else (no JAX, not even through another dnijax module)."""
    import ast
    import pathlib

    from dnijax import reference

    base = {"__future__", "typing", "collections.abc", "numpy"}
    allowed = {
        "layers.py": base,
        "mlp.py": base | {"dnijax.reference.layers", "dnijax.reference"},  # rules, lazily
        "rnn.py": base | {"dnijax.reference.mlp"},
        "rules.py": base | {"dnijax.reference"},
        "__init__.py": {"dnijax.reference", "dnijax.reference.mlp", "dnijax.reference.rules"},
    }
    files = sorted(pathlib.Path(reference.__file__).parent.glob("*.py"))
    assert {f.name for f in files} == set(allowed)  # a new module needs its entry here
    for path in files:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                found.add("." * node.level + (node.module or ""))
        assert found <= allowed[path.name], (path.name, found - allowed[path.name])
        assert not {"jax", "optax", "torch"} & {n.split(".")[0] for n in found}


def test_every_built_in_layer_kind_has_its_hand_derived_reference():
    """A layer kind is one record on each side, joined by its name: the library's
    ``layers.KINDS`` (JAX: init, apply, options) and the reference's ``KIND_RULES`` (numpy, by
    hand, which never imports JAX). The two tables list the same built-in kinds."""
    from dnijax import layers
    from dnijax.reference import layers as by_hand

    assert set(layers.BUILTIN_KINDS) == set(by_hand.BUILTIN_KINDS)
