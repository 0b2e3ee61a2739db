"""Protocol records: each paper experiment's settings as the paper states them (``paper``),
as dnijax's benchmark runs them on 2 CPU cores (``scaled``), and why each one differs.

A :class:`Protocol` lists one :class:`Setting` per axis (data, network, optimiser, budget,
SG modules, ...), each with the paper's value, the scaled value, the source of the paper's
value (a section of the paper, or "second-hand" with the reimplementation it comes from)
and the reason for the deviation. ``scaled_fields`` are the :class:`~dnijax.config.RunConfig`
fields the benchmark starts from; :meth:`Protocol.fields` gives them, or the paper's where
dnijax can run them, and names what is missing where it cannot. The docs' protocol page
(``docs/results/protocols.md``) is made from these records.

Examples:
  >>> from dnijax.experiments import protocols
  >>> cnn = protocols.PROTOCOLS["cnn"]
  >>> cnn.fields("scaled")["sg_target"], cnn.fields("scaled")["optimizer"]
  ('per_example', 'adam')
  >>> [s.what for s in cnn.deviations()][:3]
  ['data', 'conv filters', 'batch norm']
  >>> cnn.missing  # so cnn.fields("paper") raises ValueError, naming them
  ('CIFAR-10 (not offline)', 'a batch-norm layer kind')
"""

from __future__ import annotations

from typing import Any, NamedTuple

PAPER_DNI = "Jaderberg et al. 2016"
PAPER_NOISE = "Neelakantan et al. 2015"
MACHINE = "fits about 15 minutes on 2 CPU cores"


class Setting(NamedTuple):
    """One axis of an experiment under its two protocols.

    Attributes:
      what: the axis (``optimiser``, ``batch``, ``SG target``, ...).
      paper: the paper's value, or ``not stated``.
      scaled: the value dnijax's benchmark runs.
      source: where the paper's value comes from (a section, or ``second-hand:`` and who).
      why: why ``scaled`` differs from ``paper`` (empty where they agree).
    """

    what: str
    paper: str
    scaled: str
    source: str
    why: str = ""


class Protocol(NamedTuple):
    """A paper experiment's two protocols.

    Attributes:
      name: the key in :data:`PROTOCOLS`.
      title: what the experiment is.
      paper: the paper it reproduces.
      benchmark: the script that runs the scaled protocol.
      settings: one :class:`Setting` per axis.
      scaled_fields: the RunConfig fields of the scaled protocol (the network's layers and
        the data come from the benchmark).
      paper_fields: the RunConfig fields of the paper's protocol that dnijax can set.
      missing: what dnijax lacks to run the paper's protocol as stated (empty: it runs).
    """

    name: str
    title: str
    paper: str
    benchmark: str
    settings: tuple[Setting, ...]
    scaled_fields: dict[str, Any]
    paper_fields: dict[str, Any]
    missing: tuple[str, ...] = ()

    def deviations(self) -> tuple[Setting, ...]:
        """The settings where the scaled protocol departs from the paper's."""
        return tuple(s for s in self.settings if s.paper != s.scaled)

    def fields(self, which: str) -> dict[str, Any]:
        """The RunConfig fields of protocol ``which`` (``scaled`` or ``paper``).

        Raises:
          ValueError: an unknown ``which``, or ``paper`` where dnijax lacks a part of it.
        """
        if which == "scaled":
            return dict(self.scaled_fields)
        if which != "paper":
            raise ValueError(f"protocol: {which!r} is not one; choose scaled or paper")
        if self.missing:
            raise ValueError(
                f"the paper's {self.name} protocol needs what dnijax lacks: "
                + ", ".join(self.missing)
            )
        return {**self.scaled_fields, **self.paper_fields}


def _same(what: str, value: str, source: str) -> Setting:
    """A setting the scaled protocol keeps as the paper states it."""
    return Setting(what, value, value, source)


_A1 = "second-hand: the paper's appendix as reimplementations cite it"
_SECOND = "second-hand: "
_NOISE_MNIST = "second-hand: the paper's MNIST experiment as cited"

CNN = Protocol(
    "cnn",
    "DNI on a CNN",
    f"{PAPER_DNI}, CIFAR-10 CNN",
    "benchmarks/dni_cnn.py, benchmarks/cnn_ablation.py",
    (
        Setting(
            "data",
            "CIFAR-10, 32x32x3",
            "scikit-learn digits, 8x8x1",
            "paper, section 3.3 (feed-forward nets)",
            "CIFAR-10 is not offline; digits are, and are small enough for 2 cores",
        ),
        Setting(
            "conv filters",
            "128 per layer, 5x5, SAME",
            "16 per layer, 5x5, SAME",
            _SECOND + "reproductions' configs",
            "compute: 8x fewer filters on 16x fewer pixels",
        ),
        Setting(
            "batch norm",
            "after each conv",
            "none",
            _SECOND + "reproductions' configs",
            "dnijax has no batch-norm layer kind yet",
        ),
        Setting(
            "pooling",
            "3x3 max after the first conv, 3x3 average after the rest",
            "3x3 max, stride 2, then 3x3 average, stride 2",
            _SECOND + "reproductions' configs",
            "strides not stated; 2 takes the 8x8 maps to 3x3, then 1x1",
        ),
        Setting(
            "optimiser",
            "Adam 3e-5, /10 at 300k and 400k",
            "Adam 1e-3, constant",
            _A1,
            "1500 steps at 3e-5 leave backprop itself untrained",
        ),
        Setting("batch", "256", "64", _A1, "compute"),
        Setting("budget", "500k steps", "1500 steps", _A1, MACHINE),
        Setting(
            "SG module, conv block",
            "2 conv layers of 128 5x5 filters (batch norm, ReLU), zero-init 5x5 conv",
            "2 conv layers of 16 5x5 filters (ReLU), zero-init 5x5 conv",
            _SECOND + "reproductions' configs",
            "as the network's filters; no batch norm",
        ),
        Setting(
            "SG target",
            "not stated",
            "per-example gradient",
            "-",
            "dnijax's default; PyTorch and TensorFlow code regresses onto the batch-mean "
            "loss's gradient (sg_target batch)",
        ),
        Setting("SG scale", "not stated", "1", "-", "nothing to follow"),
        Setting("SG last layer init", "zero (weights and bias)", "zero (weights and bias)", _A1),
    ),
    dict(
        loss="xent",
        reduction="mean",
        init="he",
        optimizer="adam",
        lr=1e-3,
        batch_size=64,
        steps=1500,
        sg_kernel=5,
        sg_init="zero",
        sg_target="per_example",
        sg_scale=1.0,
        topology="paper",
    ),
    dict(lr=3e-5, batch_size=256, steps=500_000, sg_target="batch"),
    ("CIFAR-10 (not offline)", "a batch-norm layer kind"),
)

FCN = Protocol(
    "fcn",
    "DNI depth series, fully connected",
    f"{PAPER_DNI}, MNIST FCN (Table 1)",
    "benchmarks/dni_depth.py, benchmarks/fcn_ablation.py",
    (
        Setting(
            "data",
            "MNIST, 784 pixels",
            "mnist1d, 40 samples",
            "paper, section 3.3 (feed-forward nets)",
            "MNIST is not offline; mnist1d is generated offline and is hard enough that "
            "the output layer alone falls clearly short of backprop",
        ),
        Setting("layers", "3 to 6", "3 to 6", _SECOND + "the paper's Table 1 as cited"),
        Setting(
            "hidden layers",
            "256 units, batch norm, ReLU",
            "96 units, ReLU, no batch norm",
            _A1,
            "compute (mnist1d's 40 inputs need fewer units); dnijax has no batch-norm "
            "layer kind yet",
        ),
        Setting("optimiser", "Adam 3e-5, /10 at 300k and 400k", "Adam 1e-3 and 1e-4", _A1, MACHINE),
        Setting("batch", "256", "256", _A1),
        Setting("budget", "500k steps", "2000 steps", _A1, MACHINE),
        Setting(
            "SG module",
            "DNI: 2 hidden layers of 1024 units; cDNI: linear on [h, y]",
            "linear, or 2 hidden layers of 96, each with and without y",
            _A1,
            "compute; the 2x2 design tells conditioning from module size apart",
        ),
        Setting("SG target", "not stated", "per-example gradient", "-", "dnijax's default"),
    ),
    dict(loss="xent", reduction="mean", init="he", optimizer="adam", batch_size=256),
    dict(lr=3e-5, steps=500_000, sg_hidden=(1024, 1024), sg_target="batch"),
    ("MNIST (not offline)", "a batch-norm layer kind"),
)

_COPY_SETTINGS = (
    Setting(
        "sequences",
        "a continuous stream per batch lane, state carried across windows and sequences",
        "one episode per update sequence, state reset at each episode",
        _SECOND + "koz4k/dni-pytorch examples/rnn",
        "the published tables are episodic; carry_state=true is the stream, with each "
        "lane's sequence zero-padded to the end of the episode's last window",
    ),
    Setting("LSTM", "256 units", "64 units", _SECOND + "jrbtaylor/trace-rnn", "compute"),
    Setting("optimiser", "Adam ~7e-5", "Adam 1e-2", _SECOND + "jrbtaylor/trace-rnn", "budget"),
    Setting("batch", "256", "16", _SECOND + "jrbtaylor/trace-rnn", "compute"),
    Setting(
        "truncation T",
        "2 to 8",
        "2, 3, 4, 5, 8",
        _SECOND + "the paper's section 3.1 as cited",
        "6 and 7 left out, for time",
    ),
    Setting(
        "curriculum",
        "length + 1 below 0.15 bits error",
        "length + 1 below 0.15 bits per target bit",
        _SECOND + "the paper's section 3.1 as cited",
        "the paper's unit (per sequence or per bit) is not settled",
    ),
    Setting(
        "SG scale",
        "0.1",
        "1",
        _SECOND + "koz4k/dni-pytorch, mtanghu/DNI-RNN",
        "the ablation's first step; dnijax's option is sg_scale",
    ),
    Setting("budget", "not stated", "2000 episodes", "-", MACHINE),
    Setting(
        "noise",
        "none (noise is this study's addition)",
        "network and SG modules",
        "-",
        "the article's choice",
    ),
)

COPY = Protocol(
    "copy",
    "Copy with a length curriculum",
    f"{PAPER_DNI}, Copy (Graves et al. 2014)",
    "benchmarks/copy_task.py",
    _COPY_SETTINGS,
    dict(task="copy", core="lstm", hidden=64, optimizer="adam", lr=1e-2, batch_size=16),
    dict(hidden=256, lr=7e-5, batch_size=256, sg_scale=0.1, sg_target="batch", carry_state=True),
    (),
)

REPEAT_COPY = COPY._replace(
    name="repeat_copy",
    title="Repeat Copy with a length curriculum",
    paper=f"{PAPER_DNI}, Repeat Copy (Graves et al. 2014)",
    scaled_fields={**COPY.scaled_fields, "task": "repeat_copy"},
)

DEEP_NOISE = Protocol(
    "deep_noise",
    "Gradient noise in a 20-layer network",
    f"{PAPER_NOISE}, MNIST 20 x 50",
    "benchmarks/deep_noise.py, benchmarks/noise_rescue.py",
    (
        Setting(
            "data",
            "MNIST",
            "scikit-learn digits",
            _NOISE_MNIST,
            "MNIST is not offline; the digits' inputs carry ~5x less energy, which "
            "changes what a given init and learning rate do",
        ),
        _same("network", "20 hidden layers of 50 ReLU units", _NOISE_MNIST),
        _same("optimiser", "SGD 0.1 and 0.01, no momentum", _NOISE_MNIST),
        _same("noise", "eta 0.01, gamma 0.55", _NOISE_MNIST),
        Setting(
            "noise and clipping order",
            "not stated for MNIST (after clipping elsewhere)",
            "after clipping; before, as a second arm",
            _NOISE_MNIST,
            "both orders run",
        ),
        Setting("batch", "not stated", "64", "-", "nothing to follow"),
        Setting(
            "budget",
            "not stated",
            "2000 steps (part 2: 10,000; zero init: 30,000)",
            "-",
            MACHINE,
        ),
        Setting(
            "runs per cell",
            "40 (2 learning rates x 20)",
            "2 learning rates x 3 seeds (zero init: x 10)",
            _NOISE_MNIST,
            MACHINE,
        ),
    ),
    dict(loss="xent", reduction="mean", optimizer="sgd", batch_size=64, eta=0.01, gamma=0.55),
    dict(),
    ("MNIST (not offline)",),
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (CNN, FCN, COPY, REPEAT_COPY, DEEP_NOISE)}
"""Every paper experiment's protocol record, by name."""


def markdown(protocol: Protocol) -> str:
    """The protocol's settings as a Markdown table: paper, scaled, source, why."""
    rows = [
        "| setting | paper | scaled | source of the paper's value | why they differ |",
        "|---|---|---|---|---|",
    ]
    for s in protocol.settings:
        why = s.why if s.paper != s.scaled else "(the same)"
        rows.append(f"| {s.what} | {s.paper} | {s.scaled} | {s.source} | {why} |")
    missing = ", ".join(protocol.missing) if protocol.missing else "nothing"
    return (
        f"**{protocol.title}** ({protocol.paper}; run by `{protocol.benchmark}`)\n\n"
        + "\n".join(rows)
        + f"\n\nTo run the paper's protocol dnijax lacks: {missing}.\n"
    )
