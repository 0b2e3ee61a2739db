"""Protocol records: valid configs, deviations named with a reason, the paper's protocol
refused while dnijax lacks a part of it, and the CNN benchmark built on its record."""

import os
import sys

import pytest

from dnijax import RunConfig
from dnijax.experiments import protocols

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


@pytest.mark.parametrize("name", sorted(protocols.PROTOCOLS))
def test_every_record_is_a_valid_config_and_names_why_it_deviates(name):
    protocol = protocols.PROTOCOLS[name]
    assert protocol.name == name
    fields = protocol.fields("scaled")
    if "task" not in fields:  # a feed-forward record: the benchmark gives the network
        fields = {**fields, "widths": (4, 8, 3)}
    RunConfig(regime="dni", **fields)  # raises on a field RunConfig does not know
    assert protocol.deviations(), name
    for setting in protocol.deviations():
        assert setting.why, (name, setting.what)  # every deviation says why
        assert setting.source, (name, setting.what)
    for setting in protocol.settings:
        if setting.paper == "not stated":
            assert setting.source == "-", (name, setting.what)


def test_the_papers_protocol_is_refused_until_dnijax_has_every_part():
    cnn = protocols.PROTOCOLS["cnn"]
    with pytest.raises(ValueError, match="needs what dnijax lacks: CIFAR-10"):
        cnn.fields("paper")
    with pytest.raises(ValueError, match="choose scaled or paper"):
        cnn.fields("papers")
    runnable = cnn._replace(missing=())
    paper = runnable.fields("paper")
    assert paper["lr"] == 3e-5 and paper["sg_target"] == "batch" and paper["init"] == "he"


def test_the_cnn_benchmark_starts_from_the_cnn_record():
    sys.path.insert(0, BENCHMARKS)
    try:
        import dni_cnn
    finally:
        sys.path.remove(BENCHMARKS)

    class Digits:
        n_features = 64

    base = dni_cnn.base_config(Digits, 16, 1500, False)
    for key, value in protocols.CNN.fields("scaled").items():
        assert base[key] == value, key


def test_the_markdown_lists_every_setting():
    text = protocols.markdown(protocols.CNN)
    assert all(f"| {s.what} |" in text for s in protocols.CNN.settings)
    assert "dnijax lacks: CIFAR-10 (not offline), a batch-norm layer kind" in text


def test_the_copy_papers_protocol_is_a_stream_dnijax_can_build():
    for name in ("copy", "repeat_copy"):
        paper = protocols.PROTOCOLS[name].fields("paper")
        cfg = RunConfig(regime="dni", **paper)
        assert cfg.carry_state and cfg.sequence.carry_state and cfg.sg_scale == 0.1
        assert (cfg.hidden, cfg.batch_size, cfg.sg_target) == (256, 256, "batch")
