"""Precision and layout: fixed when asked, the fastest candidate under auto, kept by a resumed run."""

from __future__ import annotations

import pytest
import torch

from study.training import numerics
from study.training.loop import start_training
from study.training.numerics import Numerics, choose_numerics
from study.vocabulary.config import DataConfig, ModelConfig, TrialConfig

CPU = torch.device("cpu")


def config(precision: str, model: str = "small", batch_size: int = 32) -> TrialConfig:
    return TrialConfig(model=ModelConfig(model=model), data=DataConfig(batch_size=batch_size), device="cpu",
                       precision=precision)


def fake_probe(monkeypatch, seconds: dict[str, float]) -> list[str]:
    """Step times by candidate label instead of measuring; returns the labels probed, in order."""
    probed = []

    def probe_step_seconds(cfg, options, timer):
        probed.extend(candidate.label for candidate in options)
        return [seconds[candidate.label] for candidate in options]

    monkeypatch.setattr(numerics, "probe_step_seconds", probe_step_seconds)
    monkeypatch.setattr(numerics, "_CHOSEN", {})
    return probed


def test_fixed_precisions_are_never_probed(monkeypatch):
    probed = fake_probe(monkeypatch, {})
    assert choose_numerics(config("fp32"), CPU) == Numerics(CPU, "fp32", False)
    assert choose_numerics(config("bf16"), CPU) == Numerics(CPU, "bf16", True)
    assert probed == []


def test_auto_without_native_bf16_chooses_the_faster_fp32_layout_once_per_model(monkeypatch):
    monkeypatch.setattr(numerics, "native_bf16", lambda device: False)
    probed = fake_probe(monkeypatch, {"fp32": 2.0, "fp32+channels_last": 1.0})
    assert choose_numerics(config("auto"), CPU).label == "fp32+channels_last"
    assert choose_numerics(config("auto"), CPU).label == "fp32+channels_last"  # cached: no second probe
    assert probed == ["fp32", "fp32+channels_last"]
    choose_numerics(config("auto", model="medium"), CPU)  # another model is probed on its own
    assert len(probed) == 4


def test_auto_with_native_bf16_takes_bf16_only_where_it_is_faster(monkeypatch):
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)
    fake_probe(monkeypatch, {"fp32": 3.0, "fp32+channels_last": 2.0, "bf16+channels_last": 1.0, "bf16": 1.5})
    assert choose_numerics(config("auto"), CPU).label == "bf16+channels_last"
    fake_probe(monkeypatch, {"fp32": 3.0, "fp32+channels_last": 2.0, "bf16+channels_last": 4.0, "bf16": 5.0})
    assert choose_numerics(config("auto"), CPU).label == "fp32+channels_last"


def test_the_probe_times_real_steps_and_leaves_the_random_stream_alone():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    options = [Numerics(CPU, "fp32", False), Numerics(CPU, "fp32", True)]
    seconds = numerics.probe_step_seconds(config("auto"), options, rounds=1)
    assert len(seconds) == 2 and min(seconds) > 0 and torch.equal(torch.rand(3), expected)
    torch.manual_seed(7)
    assert numerics.step_seconds(config("auto"), options[1], steps=1) > 0 and torch.equal(torch.rand(3), expected)


def test_a_burst_of_load_from_another_process_does_not_decide_the_probe(monkeypatch):
    """The truly fastest candidate wins although load from elsewhere slows every step 5x from 2 s to 4.5 s
    into the probe: timed one candidate after another, that burst would cover all 5 of the fastest
    candidate's steps (after fp32's 5 x 0.4 s), and bf16+channels_last would win."""
    clock = [0.0]
    cost = {"fp32": 0.4, "fp32+channels_last": 0.1, "bf16+channels_last": 0.2, "bf16": 0.3}

    def training_step(cfg, candidate, compile=False):
        def step():
            clock[0] += cost[candidate.label] * (5 if 2.0 <= clock[0] < 4.5 else 1)
        return step

    monkeypatch.setattr(numerics, "_training_step", training_step)
    monkeypatch.setattr(numerics, "native_bf16", lambda device: True)
    monkeypatch.setattr(numerics, "_CHOSEN", {})
    options = numerics.candidates("auto", CPU)
    assert [c.label for c in options][1] == "fp32+channels_last"
    fastest = numerics.probe_step_seconds(config("auto"), options, timer=lambda: clock[0])
    assert fastest == pytest.approx([cost[c.label] for c in options])  # each one's step after the burst
    assert choose_numerics(config("auto"), CPU, timer=lambda: clock[0]).label == "fp32+channels_last"


def test_bf16_autocasts_the_convolutions_and_channels_last_lays_out_the_input():
    candidate = Numerics(CPU, "bf16", True)
    x = candidate.prepare(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    assert x.dtype == torch.float32 and x.is_contiguous(memory_format=torch.channels_last)
    with candidate.autocast():
        assert torch.nn.functional.conv2d(x, torch.ones(4, 1, 3, 3)).dtype == torch.bfloat16


def test_a_resumed_run_computes_as_the_run_it_continues(monkeypatch):
    fake_probe(monkeypatch, {"fp32": 1.0, "fp32+channels_last": 2.0})
    monkeypatch.setattr(numerics, "native_bf16", lambda device: False)
    first = start_training(config("fp32"), steps_per_epoch=4, device=CPU)
    first.numerics = Numerics.from_label("fp32+channels_last", CPU)
    first.numerics.place(first.model)
    checkpoint = first.state_dict()
    resumed = start_training(config("auto"), steps_per_epoch=4, device=CPU)  # the probe would choose fp32
    assert resumed.numerics.label == "fp32"
    resumed.load_state_dict(checkpoint)
    assert resumed.numerics.label == "fp32+channels_last"
    conv = next(m for m in resumed.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), resumed.model.state_dict().values()))
