"""Layers as ``(init, apply)`` pairs of pure functions, and the blocks DNI cuts a network into.

A layer kind is a constructor ``kind(**options) -> Layer``. Its :class:`Layer` holds

* ``init(key, in_shape, dtype) -> (out_shape, params)``: shapes are per example (no
  batch axis); ``params`` is a dict of arrays, ``{}`` for a layer without parameters;
* ``apply(params, h) -> h``: on a batch ``h`` of shape ``(B,) + in_shape``.

This is stax's convention, with the dtype passed to ``init`` so that float64 runs
draw their weights in float64. A layer is described by a hashable
:class:`LayerSpec` (kind and options), so a whole network can be a static
argument of ``jax.jit``. Each kind is one :class:`KindInfo` in :data:`KINDS` (its
constructor and what the library checks of it); :func:`register` adds a kind of your own.

Built-in kinds (``docs/math.md``, "Layers and blocks"):

* ``dense``: ``features``; ``h W + b`` with ``W`` of shape ``(n_in, features)``;
* ``conv2d``: ``features``, ``kernel``, ``stride``; NHWC input, HWIO kernel
  ``(kernel, kernel, c_in, features)``, SAME padding (XLA's: the padding that the
  output of ``ceil(H / stride)`` rows needs, its odd unit on the high side), plus a
  bias per output channel;
* ``max_pool``, ``avg_pool``: ``window`` and ``stride`` (default ``window``), VALID
  padding, over height and width;
* ``flatten`` (row-major), ``reshape`` (``shape``: the per-example shape);
* the activations ``sigmoid``, ``tanh``, ``relu``, ``identity``;
* ``"file.py:name"`` or ``"package.module:name"``: the constructor ``name`` there, loaded
  and registered on first use (layers of your own in a config file).

``dense`` and ``conv2d`` also take ``bias`` (default true), ``init`` (a scheme of
:data:`INITS`: ``normal``, ``zeros``, ``glorot``, ``he``, or your own from
:func:`register_init`), ``init_scale`` and ``init_shift`` (of ``normal``:
``scale * N(0, 1) + shift``); a :class:`~dnijax.config.RunConfig` fills in the ones
a layer does not give from its own fields.

A *block* is one layer with parameters plus the layers without parameters
around it: a block starts at each parameterised layer (the first block also
holds any parameter-free layers before it). Blocks are the units of DNI: each
has its own parameters, and its output is where an SG module sits.

Examples:
  >>> import jax, jax.numpy as jnp
  >>> from dnijax import layers
  >>> conv = layers.build(layers.spec("conv2d", features=4, kernel=3))
  >>> out_shape, params = conv.init(jax.random.key(0), (8, 8, 1), jnp.float32)
  >>> out_shape, params["w"].shape
  ((8, 8, 4), (3, 3, 1, 4))
  >>> conv.apply(params, jnp.ones((2, 8, 8, 1))).shape
  (2, 8, 8, 4)
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from dnijax import registry

Shape = tuple[int, ...]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda z: z,
}
WEIGHT_OPTIONS = ("bias", "init", "init_scale", "init_shift")

Init = Callable[[jax.Array, Shape, Any, float, float], jax.Array]

INITS: dict[str, Init] = {
    "normal": lambda key, shape, dtype, scale, shift: (
        scale * jax.random.normal(key, shape, dtype) + shift
    ),
    "zeros": lambda key, shape, dtype, scale, shift: jnp.zeros(shape, dtype),
    "glorot": lambda key, shape, dtype, scale, shift: jax.nn.initializers.glorot_normal()(
        key, shape, dtype
    ),
    "he": lambda key, shape, dtype, scale, shift: jax.nn.initializers.he_normal()(
        key, shape, dtype
    ),
}
"""The weight init schemes by name: ``init(key, shape, dtype, init_scale, init_shift) ->
array`` (only ``normal`` reads the scale and shift). Add one with :func:`register_init`."""
BUILTIN_INITS = tuple(INITS)


def register_init(name: str, init: Init) -> None:
    """Adds the weight init scheme ``name``: ``init(key, shape, dtype, init_scale,
    init_shift)`` draws one weight array (a dense ``(n_in, n_out)`` matrix, a conv
    ``(k, k, c_in, c_out)`` kernel). The network's layers, a
    :class:`~dnijax.config.RunConfig`'s ``init`` and SG modules with ``sg_init="network"``
    can then use it.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from dnijax import RunConfig, layers, nets
      >>> layers.register_init("ones", lambda key, shape, dtype, scale, shift:
      ...                      jnp.ones(shape, dtype))
      >>> cfg = RunConfig(init="ones", widths=(2, 3, 1))
      >>> float(nets.init_network(jax.random.key(0), cfg.net_spec)[0]["w"].sum())
      6.0
      >>> layers.unregister_init("ones")
    """
    registry.add(INITS, BUILTIN_INITS, "init", name, init)


def unregister_init(name: str) -> None:
    """Removes an init scheme added with :func:`register_init` (built-ins stay)."""
    registry.remove(INITS, BUILTIN_INITS, name)


class Layer(NamedTuple):
    """A layer: ``init(key, in_shape, dtype) -> (out_shape, params)`` and
    ``apply(params, h) -> h``."""

    init: Callable[[jax.Array, Shape, Any], tuple[Shape, dict]]
    apply: Callable[[dict, jax.Array], jax.Array]


class LayerSpec(NamedTuple):
    """A layer's kind and options, hashable: ``spec("conv2d", features=8, kernel=3)``."""

    kind: str
    options: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str, default: Any = None) -> Any:
        """The option ``name``, or ``default``."""
        return dict(self.options).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """``{"kind": ..., **options}``, the form of a config file."""
        return {
            "kind": self.kind,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in self.options},
        }


class Block(NamedTuple):
    """One block: its layers and the index of the one with parameters."""

    layers: tuple[LayerSpec, ...]
    weighted: int


def spec(kind: str, **options: Any) -> LayerSpec:
    """A :class:`LayerSpec` with its options sorted (lists become tuples)."""
    return LayerSpec(
        kind, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    )


def weights(
    key: jax.Array,
    shape: Shape,
    dtype: Any,
    init: str = "normal",
    init_scale: float = 0.2,
    init_shift: float = -0.1,
) -> jax.Array:
    """A weight array drawn by the scheme ``init`` of :data:`INITS`: ``normal``
    (``init_scale * N(0, 1) + init_shift``, the article's scheme), ``zeros``, ``glorot``
    (Glorot normal), ``he`` (He normal) or one added with :func:`register_init`; fans
    are counted over the last two axes times the rest (a kernel's receptive field)."""
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    return INITS[init](key, shape, dtype, init_scale, init_shift)


def _weighted(
    w_shape: Callable[[Shape], Shape],
    out_shape: Callable[[Shape], Shape],
    apply: Callable,
    features: int,
    bias: bool,
    init: str,
    init_scale: float,
    init_shift: float,
) -> Layer:
    def init_fn(key, in_shape, dtype):
        params = {"w": weights(key, w_shape(in_shape), dtype, init, init_scale, init_shift)}
        if bias:
            params["b"] = jnp.zeros((features,), dtype)
        return out_shape(in_shape), params

    def apply_fn(params, h):
        z = apply(params["w"], h)
        return z + params["b"] if "b" in params else z

    return Layer(init_fn, apply_fn)


def dense(
    features: int,
    bias: bool = True,
    init: str = "normal",
    init_scale: float = 0.2,
    init_shift: float = -0.1,
) -> Layer:
    """``h W (+ b)`` on per-example vectors."""
    return _weighted(
        lambda s: (s[-1], features),
        lambda s: s[:-1] + (features,),
        lambda w, h: h @ w,
        features,
        bias,
        init,
        init_scale,
        init_shift,
    )


def conv_output_size(size: int, stride: int) -> int:
    """SAME padding: ``ceil(size / stride)``."""
    return -(-size // stride)


def conv2d(
    features: int,
    kernel: int = 3,
    stride: int = 1,
    bias: bool = True,
    init: str = "normal",
    init_scale: float = 0.2,
    init_shift: float = -0.1,
) -> Layer:
    """A 2-D convolution, NHWC, HWIO kernel, SAME padding."""

    def apply(w, h):
        return jax.lax.conv_general_dilated(
            h, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )

    return _weighted(
        lambda s: (kernel, kernel, s[-1], features),
        lambda s: (conv_output_size(s[0], stride), conv_output_size(s[1], stride), features),
        apply,
        features,
        bias,
        init,
        init_scale,
        init_shift,
    )


def _pool(reducer: str, window: int, stride: int | None) -> Layer:
    stride = window if stride is None else stride

    def out_shape(s):
        return ((s[0] - window) // stride + 1, (s[1] - window) // stride + 1, s[2])

    def apply(params, h):
        dims, strides = (1, window, window, 1), (1, stride, stride, 1)
        if reducer == "max":
            return jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, dims, strides, "VALID")
        total = jax.lax.reduce_window(h, 0.0, jax.lax.add, dims, strides, "VALID")
        return total / (window * window)

    return Layer(lambda key, s, dtype: (out_shape(s), {}), apply)


def max_pool(window: int = 2, stride: int | None = None) -> Layer:
    """The largest value of each ``window x window`` patch (VALID padding)."""
    return _pool("max", window, stride)


def avg_pool(window: int = 2, stride: int | None = None) -> Layer:
    """The mean of each ``window x window`` patch (VALID padding)."""
    return _pool("avg", window, stride)


def reshape(shape: Sequence[int]) -> Layer:
    """Reshapes each example to ``shape`` (row-major)."""
    shape = tuple(shape)
    return Layer(
        lambda key, s, dtype: (shape, {}), lambda params, h: h.reshape((h.shape[0],) + shape)
    )


def flatten() -> Layer:
    """Each example to a vector (row-major)."""
    return Layer(
        lambda key, s, dtype: ((math.prod(s),), {}), lambda params, h: h.reshape((h.shape[0], -1))
    )


def activation(name: str) -> Layer:
    """An elementwise activation from ``ACTIVATIONS``."""
    fn = ACTIVATIONS[name]
    return Layer(lambda key, s, dtype: (s, {}), lambda params, h: fn(h))


def _pool_check(layer: LayerSpec, shape: Shape) -> str | None:
    window = layer.get("window", 2)
    if window > min(shape[:2]):
        return f"window {window} is larger than its input {shape}"
    return None


def _reshape_check(layer: LayerSpec, shape: Shape) -> str | None:
    if math.prod(layer.get("shape")) != math.prod(shape):
        return (
            f"shape {list(layer.get('shape'))} does not hold the {math.prod(shape)} "
            f"values of its input {shape}"
        )
    return None


class KindInfo(NamedTuple):
    """Everything the library knows of a layer kind, registered in one place (:data:`KINDS`).

    Attributes:
      constructor: ``constructor(**options) -> Layer``.
      options: the options it takes (checked, one-line errors), or ``None``: not checked
        (the constructor's own signature decides).
      required: the options it must be given.
      input_rank: the rank of the per-example input it takes (1 vectors, 3 images), or
        ``None`` for any.
      weighted: whether it takes the weight options (``bias``, ``init``, ``init_scale``,
        ``init_shift``), which a :class:`~dnijax.config.RunConfig` then fills in.
      check: ``check(spec, in_shape) -> message | None``, a further check of the input
        shape (``None``: none).
    """

    constructor: Callable[..., Layer]
    options: tuple[str, ...] | None = None
    required: tuple[str, ...] = ()
    input_rank: int | None = None
    weighted: bool = False
    check: Callable[[LayerSpec, Shape], str | None] | None = None


KINDS: dict[str, KindInfo] = {
    "dense": KindInfo(dense, ("features",) + WEIGHT_OPTIONS, ("features",), 1, True),
    "conv2d": KindInfo(
        conv2d, ("features", "kernel", "stride") + WEIGHT_OPTIONS, ("features",), 3, True
    ),
    "max_pool": KindInfo(max_pool, ("window", "stride"), input_rank=3, check=_pool_check),
    "avg_pool": KindInfo(avg_pool, ("window", "stride"), input_rank=3, check=_pool_check),
    "reshape": KindInfo(reshape, ("shape",), ("shape",), check=_reshape_check),
    "flatten": KindInfo(flatten, ()),
    **{name: KindInfo(lambda name=name: activation(name), ()) for name in ACTIVATIONS},
}
"""The layer kinds by name, one :class:`KindInfo` each. Add one with :func:`register`."""
BUILTIN_KINDS = tuple(KINDS)


def register(
    kind: str,
    constructor: Callable[..., Layer],
    *,
    options: Sequence[str] | None = None,
    required: Sequence[str] = (),
    input_rank: int | None = None,
    weighted: bool = False,
    check: Callable[[LayerSpec, Shape], str | None] | None = None,
) -> None:
    """Adds a layer kind: ``constructor(**options) -> Layer``, options from the config.

    Args:
      kind: its name.
      constructor: builds the layer from its options.
      options: the options it takes (checked, one-line errors), or ``None``: not checked.
        With the next four arguments, what the library checks and fills in
        (:class:`KindInfo`); by default nothing is checked and no weight options are
        filled in.
      required: the options it must be given.
      input_rank: the rank of the per-example input it takes (1 vectors, 3 images), or
        ``None`` for any.
      weighted: whether it takes the weight options, which a config then fills in.
      check: ``check(spec, in_shape) -> message | None``, a further check of the input
        shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from dnijax import layers
      >>> def scale(factor=2.0):
      ...     return layers.Layer(lambda key, s, dtype: (s, {}),
      ...                         lambda params, h: factor * h)
      >>> layers.register("scale", scale)
      >>> layers.build(layers.spec("scale", factor=3.0)).apply({}, jnp.ones(2)).tolist()
      [3.0, 3.0]
      >>> layers.unregister("scale")
    """
    if kind in BUILTIN_KINDS:
        raise ValueError(f"layer kind {kind!r} is built in; register it under another name")
    KINDS[kind] = KindInfo(
        constructor,
        None if options is None else tuple(options),
        tuple(required),
        input_rank,
        weighted,
        check,
    )


def unregister(kind: str) -> None:
    """Removes a kind added with :func:`register`."""
    if kind not in BUILTIN_KINDS:
        KINDS.pop(kind, None)


def is_weighted(kind: str) -> bool:
    """Whether the kind takes the weight options (``dense``, ``conv2d``; :class:`KindInfo`)."""
    return kind in KINDS and KINDS[kind].weighted


def _check_option(where: str, name: str, value: Any) -> None:
    if name == "bias" and not isinstance(value, bool):
        raise ValueError(f"{where}: bias {value!r} must be true or false")
    if name == "init" and value not in INITS:
        raise ValueError(f"{where}: init {value!r} is unknown; choose one of {', '.join(INITS)}")
    if name in ("init_scale", "init_shift") and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        raise ValueError(f"{where}: {name} {value!r} must be a finite number")
    if name in ("features", "kernel", "stride", "window") and (
        isinstance(value, bool) or not isinstance(value, int) or value < 1
    ):
        raise ValueError(f"{where}: {name} {value!r} must be an integer >= 1")
    if name == "shape" and (
        not isinstance(value, (list, tuple))
        or not value
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value)
    ):
        raise ValueError(f"{where}: shape {value!r} must be a list of integers >= 1")


def parse_layers(items: Sequence[Any]) -> tuple[LayerSpec, ...]:
    """Checks a layer list (dicts with a ``kind``, or :class:`LayerSpec`) and returns it
    as specs; ``ValueError`` with one line naming the layer and what to fix."""
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(
            'layers: give a non-empty list of layers, e.g. [{"kind": "dense", "features": 10}]'
        )
    out = []
    for i, item in enumerate(items, 1):
        if isinstance(item, LayerSpec):
            kind, options = item.kind, dict(item.options)
        elif isinstance(item, dict):
            options = dict(item)
            kind = options.pop("kind", None)
        else:
            raise ValueError(f'layers: layer {i} is {item!r}; give an object with a "kind"')
        if isinstance(kind, str) and kind not in KINDS and ":" in kind:
            import_kind(kind)
        if kind not in KINDS:
            raise ValueError(
                f"layers: layer {i} has unknown kind {kind!r}; choose one of "
                f"{', '.join(KINDS)} or register your own (dnijax.layers.register)"
            )
        where = f"layers: layer {i} ({kind})"
        info = KINDS[kind]
        if info.options is not None:
            unknown = sorted(set(options) - set(info.options))
            if unknown:
                raise ValueError(
                    f"{where}: unknown option(s) {', '.join(unknown)}; allowed: "
                    f"{', '.join(info.options) or 'none'}"
                )
        missing = [k for k in info.required if k not in options]
        if missing:
            raise ValueError(f"{where}: give {', '.join(missing)}")
        if info.options is not None:
            for name, value in options.items():
                _check_option(where, name, value)
        out.append(spec(kind, **options))
    return tuple(out)


def check_shapes(layer_specs: Sequence[LayerSpec], in_shape: Shape) -> list[Shape]:
    """The output shape of each layer, or ``ValueError`` (one line) for the first layer
    that cannot take its input."""
    shapes, shape = [], tuple(in_shape)
    for i, layer in enumerate(layer_specs, 1):
        where = f"layers: layer {i} ({layer.kind})"
        info = KINDS.get(layer.kind)
        rank = None if info is None else info.input_rank
        if rank is not None and len(shape) != rank:
            fix = "add a flatten before it" if rank == 1 else "add a reshape before it"
            kind = "vectors" if rank == 1 else "images (H, W, C)"
            raise ValueError(f"{where} takes {kind}, but its input has shape {shape}; {fix}")
        problem = None if info is None or info.check is None else info.check(layer, shape)
        if problem:
            raise ValueError(f"{where}: {problem}")
        try:
            shape = trace_shapes([layer], shape)[0][0]
        except Exception as err:  # a user's layer: say which one failed, in one line
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ValueError(f"{where} fails on input shape {shape}: {msg}") from None
        shapes.append(shape)
    return shapes


def with_defaults(layer_specs: Sequence[LayerSpec], **weight_options: Any) -> tuple[LayerSpec, ...]:
    """Gives each dense and conv2d layer the weight options it does not set itself."""
    return tuple(
        spec(layer.kind, **{**weight_options, **dict(layer.options)})
        if is_weighted(layer.kind)
        else layer
        for layer in layer_specs
    )


def import_kind(kind: str) -> None:
    """Registers the kind ``"file.py:name"`` or ``"package.module:name"``: the constructor
    ``name`` of that file or module (so config files can use layers of your own).

    Raises:
      ValueError: one line, if the file, module or name cannot be loaded.
    """
    source, _, name = kind.rpartition(":")
    try:
        if source.endswith(".py"):
            path = os.path.abspath(source)
            module_spec = importlib.util.spec_from_file_location(
                f"dnijax_user_layers_{abs(hash(path))}", path
            )
            if module_spec is None or module_spec.loader is None or not os.path.isfile(path):
                raise ImportError(f"no file {source}")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(source)
        constructor = getattr(module, name)
    except Exception as err:  # the user's code: report it in one line
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"layers: cannot load kind {kind!r} ({msg}); give "
            '"file.py:function" or "module:function"'
        ) from None
    if not callable(constructor):
        raise ValueError(f"layers: {kind!r} is not a function returning a Layer")
    KINDS[kind] = KindInfo(constructor)


def build(layer: LayerSpec) -> Layer:
    """The :class:`Layer` a spec describes."""
    if layer.kind not in KINDS and ":" in layer.kind:
        import_kind(layer.kind)
    if layer.kind not in KINDS:
        raise ValueError(
            f"layers: unknown kind {layer.kind!r}; choose one of "
            f"{', '.join(KINDS)} or register your own (dnijax.layers.register)"
        )
    return KINDS[layer.kind].constructor(**dict(layer.options))


def trace_shapes(
    layer_specs: Sequence[LayerSpec], in_shape: Shape, dtype: Any = jnp.float32
) -> list[tuple[Shape, bool]]:
    """``(out_shape, has_params)`` of each layer, from an abstract init (nothing drawn)."""
    shapes, shape = [], tuple(in_shape)
    for layer in layer_specs:
        box: dict[str, Any] = {}

        def init(key, layer=layer, shape=shape, box=box):
            box["out"], params = build(layer).init(key, shape, dtype)
            return params

        params = jax.eval_shape(init, jax.random.key(0))
        shape = tuple(box["out"])
        shapes.append((shape, len(jax.tree.leaves(params)) > 0))
    return shapes


def mlp_specs(
    widths: Sequence[int], activations: Sequence[str], **weight_options: Any
) -> tuple[LayerSpec, ...]:
    """The layer list of an MLP: ``dense(n_1), act_1, ..., dense(n_L), act_L``.

    ``widths = (n_0, ..., n_L)`` (``n_0``, the input, is not a layer); ``weight_options``
    (``bias``, ``init``, ...) go to every dense layer.
    """
    out: list[LayerSpec] = []
    for width, act in zip(widths[1:], activations, strict=True):
        out += [spec("dense", features=int(width), **weight_options), spec(act)]
    return tuple(out)


def group_blocks(layer_specs: Sequence[LayerSpec], has_params: Sequence[bool]) -> tuple[Block, ...]:
    """Cuts a layer list into blocks: a new block at each parameterised layer but the
    first (``ValueError`` if no layer has parameters)."""
    if not any(has_params):
        raise ValueError("layers: no layer has parameters; add a dense or conv2d layer")
    groups: list[list[LayerSpec]] = [[]]
    weighted: list[int] = []
    for layer, has in zip(layer_specs, has_params, strict=True):
        if has:
            if weighted:
                groups.append([])
            weighted.append(len(groups[-1]))
        groups[-1].append(layer)
    return tuple(Block(tuple(g), w) for g, w in zip(groups, weighted, strict=True))


def init_block(key: jax.Array, block: Block, in_shape: Shape, dtype: Any) -> tuple[Shape, dict]:
    """Initialises a block: its parameterised layer draws from ``key``."""
    params: dict = {}
    shape = tuple(in_shape)
    for j, layer in enumerate(block.layers):
        shape, p = build(layer).init(key, shape, dtype)
        shape = tuple(shape)
        if j == block.weighted:
            params = p
    return shape, params


def apply_block(params: dict, h: jax.Array, block: Block) -> jax.Array:
    """A block on a batch: its layers in order, the parameterised one with ``params``."""
    for j, layer in enumerate(block.layers):
        h = build(layer).apply(params if j == block.weighted else {}, h)
    return h
