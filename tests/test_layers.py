"""Layers as (init, apply) pairs, blocks, the ``layers`` config and its one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dnijax import RunConfig, engine, layers, nets, synthetic

CNN = (
    {"kind": "reshape", "shape": [4, 4, 1]},
    {"kind": "conv2d", "features": 3},
    {"kind": "relu"},
    {"kind": "max_pool"},
    {"kind": "flatten"},
    {"kind": "dense", "features": 2},
)


def _data(n=32, d=16, seed=0):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, d).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


def test_blocks_start_at_each_layer_with_parameters():
    cfg = RunConfig(regime="dni", widths=(16,), layers=CNN, loss="xent")
    blocks = cfg.net_spec.blocks
    assert [[layer.kind for layer in b.layers] for b in blocks] == [
        ["reshape", "conv2d", "relu", "max_pool", "flatten"],
        ["dense"],
    ]
    assert [b.weighted for b in blocks] == [1, 0]
    assert cfg.widths == (16, 12, 2)  # input, then each block's output size
    # the config's init fields become the defaults of every weighted layer
    assert cfg.net_spec.blocks[0].layers[1].get("init") == "normal"
    assert cfg.replace(init="he").net_spec.blocks[0].layers[1].get("init") == "he"


def test_an_mlp_as_a_layer_list_is_the_widths_mlp_bit_for_bit():
    short = RunConfig(
        regime="dni",
        widths=(16, 6, 2),
        activations=("tanh", "identity"),
        loss="xent",
        reduction="mean",
        steps=20,
        lr=0.1,
    )
    long = short.replace(
        layers=(
            {"kind": "dense", "features": 6},
            {"kind": "tanh"},
            {"kind": "dense", "features": 2},
        )
    )
    x, labels = _data()
    a, _ = engine.run_one(short, x, labels, jax.random.key(1))
    b, _ = engine.run_one(long, x, labels, jax.random.key(1))
    for u, v in zip(jax.tree.leaves((a.net, a.sg)), jax.tree.leaves((b.net, b.sg)), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    "items,message",
    [
        ([], "non-empty list"),
        ([{"features": 3}], "unknown kind None"),
        ([{"kind": "convolution"}], "unknown kind 'convolution'"),
        ([{"kind": "dense"}], r"layer 1 \(dense\): give features"),
        ([{"kind": "dense", "features": 0}], "features 0 must be an integer >= 1"),
        ([{"kind": "dense", "features": 2, "widht": 3}], "unknown option"),
        ([{"kind": "dense", "features": 2, "init": "orthogonal"}], "init 'orthogonal'"),
        ([{"kind": "conv2d", "features": 2}], r"takes images \(H, W, C\).*add a reshape"),
        (
            [{"kind": "reshape", "shape": [4, 4, 1]}, {"kind": "dense", "features": 2}],
            "takes vectors.*add a flatten",
        ),
        ([{"kind": "reshape", "shape": [3, 3, 1]}], "does not hold the 16 values"),
        (
            [{"kind": "reshape", "shape": [4, 4, 1]}, {"kind": "max_pool", "window": 5}],
            "window 5 is larger",
        ),
        (
            [{"kind": "reshape", "shape": [4, 4, 1]}, {"kind": "conv2d", "features": 2}],
            "the last layer outputs shape",
        ),
        ([{"kind": "relu"}], "no layer has parameters"),
        (["dense"], 'give an object with a "kind"'),
    ],
)
def test_bad_layer_lists_get_one_line_errors(items, message):
    with pytest.raises(ValueError, match=message) as err:
        RunConfig(widths=(16,), layers=items)
    assert "\n" not in str(err.value)


def test_sg_modules_need_vectors_or_images():
    items = (
        {"kind": "reshape", "shape": [4, 4]},
        {"kind": "scale2"},
        {"kind": "scale2"},
        {"kind": "flatten"},
        {"kind": "dense", "features": 2},
    )

    def scale2():  # a 2-D per-example output: fine for backprop, no SG module for it
        return layers.Layer(
            lambda key, s, dtype: (s, {"a": jnp.ones((), dtype)}), lambda p, h: p["a"] * h
        )

    layers.register("scale2", scale2)
    try:
        RunConfig(regime="backprop", widths=(16,), layers=items)
        with pytest.raises(ValueError, match=r"block 1 outputs shape \(4, 4\)"):
            RunConfig(regime="dni", widths=(16,), layers=items)
    finally:
        layers.unregister("scale2")


def test_builtin_kinds_cannot_be_replaced_and_user_errors_name_the_layer():
    with pytest.raises(ValueError, match="built in"):
        layers.register("dense", layers.dense)

    def broken():
        def init(key, shape, dtype):
            raise TypeError("needs a 3-D input")

        return layers.Layer(init, lambda p, h: h)

    layers.register("broken", broken)
    try:
        with pytest.raises(
            ValueError,
            match=r"layer 1 \(broken\) fails on input shape "
            r"\(16,\): needs a 3-D input",
        ):
            RunConfig(widths=(16,), layers=[{"kind": "broken"}])
    finally:
        layers.unregister("broken")


def layer_norm():
    """A user layer with parameters: layer normalisation over each example's features."""

    def init(key, shape, dtype):
        return shape, {"gain": jnp.ones(shape, dtype), "shift": jnp.zeros(shape, dtype)}

    def apply(params, h):
        mean = h.mean(-1, keepdims=True)
        std = jnp.sqrt(h.var(-1, keepdims=True) + 1e-5)
        return params["gain"] * (h - mean) / std + params["shift"]

    return layers.Layer(init, apply)


@pytest.mark.parametrize("regime", ["backprop", "dni+noise"])  # both rules, noise
def test_a_user_layer_trains_under_the_regimes(regime):
    layers.register("layer_norm", layer_norm)
    try:
        cfg = RunConfig(
            regime=regime,
            widths=(16,),
            loss="xent",
            reduction="mean",
            layers=(
                {"kind": "dense", "features": 8},
                {"kind": "layer_norm"},
                {"kind": "tanh"},
                {"kind": "dense", "features": 2},
            ),
            optimizer="adam",
            lr=0.01,
            init="glorot",
            steps=200,
            conditioned=True,
        )
        x, labels = _data(64)
        state, history = engine.run_one(cfg, x, labels, jax.random.key(0))
        # three blocks: dense; layer_norm + tanh; dense
        assert [set(p) for p in state.net] == [{"w", "b"}, {"gain", "shift"}, {"w", "b"}]
        assert history["loss"][-1] < 0.7 * history["loss"][0]
        assert int(state.diverged_at) == -1
    finally:
        layers.unregister("layer_norm")


def test_a_config_file_can_name_a_layer_in_a_python_file(tmp_path):
    (tmp_path / "mine.py").write_text(
        "import jax.numpy as jnp\nfrom dnijax import layers\n\n"
        "def double():\n"
        "    return layers.Layer(lambda key, s, dtype: (s, {}), lambda p, h: 2 * h)\n"
    )
    kind = f"{tmp_path / 'mine.py'}:double"
    try:
        cfg = RunConfig(widths=(4,), layers=[{"kind": kind}, {"kind": "dense", "features": 1}])
        assert cfg.net_spec.blocks[0].layers[0].kind == kind
        with pytest.raises(ValueError, match="cannot load kind .*nope"):
            RunConfig(widths=(4,), layers=[{"kind": f"{tmp_path / 'mine.py'}:nope"}])
        with pytest.raises(ValueError, match="cannot load kind"):
            RunConfig(widths=(4,), layers=[{"kind": "missing_file.py:double"}])
    finally:
        layers.unregister(kind)


def test_a_kind_registers_what_is_checked_of_it_in_one_record():
    def scale(factor=2.0):
        return layers.Layer(lambda key, s, dtype: (s, {}), lambda params, h: factor * h)

    def wide_enough(layer, shape):
        return None if shape[0] >= 2 else f"needs 2 features, has {shape[0]}"

    layers.register(
        "scale", scale, options=("factor",), required=("factor",), input_rank=1, check=wide_enough
    )
    layers.register("my_dense", layers.dense, weighted=True)
    try:
        assert layers.KINDS["scale"] == layers.KindInfo(
            scale, ("factor",), ("factor",), 1, False, wide_enough
        )
        with pytest.raises(
            ValueError,
            match=r"layer 1 \(scale\): unknown option\(s\) gain; "
            "allowed: factor",
        ):
            layers.parse_layers([{"kind": "scale", "factor": 2.0, "gain": 1.0}])
        with pytest.raises(ValueError, match=r"layer 1 \(scale\): give factor"):
            layers.parse_layers([{"kind": "scale"}])
        specs = layers.parse_layers(
            [{"kind": "reshape", "shape": [2, 2, 1]}, {"kind": "scale", "factor": 3.0}]
        )
        with pytest.raises(
            ValueError,
            match=r"layer 2 \(scale\) takes vectors, but its input "
            r"has shape \(2, 2, 1\); add a flatten",
        ):
            layers.check_shapes(specs, (4,))
        with pytest.raises(ValueError, match=r"layer 1 \(scale\): needs 2 features, has 1"):
            layers.check_shapes(specs[1:], (1,))
        assert layers.check_shapes(specs[1:], (4,)) == [(4,)]
        # a weighted kind gets the config's weight options, as dense and conv2d do
        filled = layers.with_defaults((layers.spec("my_dense", features=3),), init="he")
        assert filled[0].get("init") == "he" and layers.is_weighted("my_dense")
        assert not layers.is_weighted("scale")
    finally:
        layers.unregister("scale")
        layers.unregister("my_dense")
    assert "scale" not in layers.KINDS and not layers.is_weighted("my_dense")
    assert [k for k in layers.BUILTIN_KINDS if layers.is_weighted(k)] == ["dense", "conv2d"]


def test_an_init_scheme_of_your_own_is_one_registry_entry():
    """A registered init draws the weights of dense and conv2d layers and, with
    ``sg_init="network"``, of the SG modules; afterwards the name is unknown again."""
    key = jax.random.key(0)
    layers.register_init(
        "constant", lambda key, shape, dtype, scale, shift: jnp.full(shape, scale + shift, dtype)
    )
    try:
        cfg = RunConfig(
            regime="dni",
            init="constant",
            init_scale=0.5,
            init_shift=0.25,
            sg_init="network",
            widths=(2, 3, 1),
        )
        net = nets.init_network(key, cfg.net_spec)
        np.testing.assert_array_equal(net[0]["w"], np.full((2, 3), 0.75, np.float32))
        sgs = synthetic.init_sg_modules(
            key,
            nets.block_shapes(cfg.net_spec),
            cfg.sg_spec,
            1,
            net_init=cfg.init,
            scale=cfg.init_scale,
            shift=cfg.init_shift,
        )
        np.testing.assert_array_equal(sgs[0][0]["w"], np.full((3, 3), 0.75, np.float32))
        conv = layers.build(layers.spec("conv2d", features=2, init="constant"))
        np.testing.assert_allclose(
            conv.init(key, (4, 4, 1), jnp.float32)[1]["w"], 0.1, rtol=1e-6
        )  # the default scale 0.2 and shift -0.1
        with pytest.raises(ValueError, match="built in"):
            layers.register_init("he", layers.INITS["glorot"])
    finally:
        layers.unregister_init("constant")
    with pytest.raises(
        ValueError, match="unknown init 'constant'; choose one of normal, zeros, glorot, he$"
    ):
        layers.weights(key, (2, 2), jnp.float32, "constant")
    with pytest.raises(ValueError, match="init: unknown value 'constant'"):
        RunConfig(init="constant")
    with pytest.raises(ValueError, match=r"layer 1 \(dense\): init 'constant' is unknown"):
        layers.parse_layers([{"kind": "dense", "features": 2, "init": "constant"}])
