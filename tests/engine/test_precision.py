"""Precision: bf16 autocast only where the device runs bf16 natively; an explicit bf16 refused elsewhere."""

import pytest
import torch
from engine_helpers import RecordingCallbacks

from distillery.jobspec import JobSpec
from engine.errors import UserError
from engine.run import run_job
from engine.training import precision as precision_module
from engine.training.precision import (
    BF16Support,
    PrecisionChoice,
    choose_precision,
    cpu_bf16_support,
    describe_choice,
    probe_bf16,
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
NATIVE = BF16Support(True, "this device runs bf16 natively")
EMULATED = BF16Support(False, "this device has no bf16 instructions")

# Capability flags as torch.cpu.get_capabilities() reports them (only the ones that matter here).
SAPPHIRE_RAPIDS = {
    "architecture": "x86_64",
    "avx2": True,
    "avx512_f": True,
    "avx512_bf16": True,
    "amx_bf16": True,
}
ZEN_4 = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
ZEN_3 = {"architecture": "x86_64", "avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_bf16": False}
SKYLAKE = {"architecture": "x86_64", "avx2": True, "avx512_f": True, "avx512_bf16": False}
GRAVITON_3 = {"architecture": "aarch64", "neon": True, "bf16": True, "sve": True, "sve_bf16": True}


def probe_of(support: BF16Support):
    """A probe that answers `support` for any device and records which devices it was asked about."""
    asked: list[str] = []

    def probe(device: torch.device) -> BF16Support:
        asked.append(device.type)
        return support

    probe.asked = asked  # type: ignore[attr-defined]
    return probe


@pytest.mark.parametrize("device", [CPU, CUDA], ids=["cpu", "cuda"])
@pytest.mark.parametrize(
    ("requested", "support", "expected"),
    [
        ("auto", NATIVE, "bf16"),
        ("auto", EMULATED, "fp32"),
        ("bf16", NATIVE, "bf16"),
        ("fp32", NATIVE, "fp32"),
        ("fp32", EMULATED, "fp32"),
    ],
)
def test_precision_follows_the_request_and_the_device(device, requested, support, expected):
    choice = choose_precision(requested, device, probe=probe_of(support))
    assert choice.precision == expected
    assert choice.device_type == device.type
    prefix = {"auto": "auto: ", "bf16": "bf16 as the job asked", "fp32": "fp32 as the job asked"}
    assert choice.reason.startswith(prefix[requested])
    if requested != "fp32":
        assert support.detail in choice.reason


@pytest.mark.parametrize("device", [CPU, CUDA], ids=["cpu", "cuda"])
def test_explicit_bf16_without_native_support_is_a_user_error_naming_the_field(device):
    with pytest.raises(UserError) as raised:
        choose_precision("bf16", device, probe=probe_of(EMULATED))
    error = raised.value
    assert error.code == "precision_unsupported" and error.param == "training.precision"
    assert EMULATED.detail in error.message
    assert "'auto'" in error.message and "'fp32'" in error.message


def test_fp32_does_not_probe_the_hardware():
    probe = probe_of(NATIVE)
    assert choose_precision("fp32", CPU, probe=probe).precision == "fp32"
    assert probe.asked == []


@pytest.mark.parametrize(
    ("capabilities", "onednn_bf16", "native", "named"),
    [
        (SAPPHIRE_RAPIDS, True, True, "AMX"),
        (ZEN_4, True, True, "AVX-512 BF16"),
        (ZEN_3, True, False, "no bf16 instructions"),
        (SKYLAKE, True, False, "no bf16 instructions"),
        (GRAVITON_3, True, True, "SVE BF16"),
        (SAPPHIRE_RAPIDS, False, False, "oneDNN, torch's CPU kernel library, cannot use it"),
    ],
    ids=["amx", "avx512-bf16", "avx2-only", "avx512-without-bf16", "arm-bf16", "build-without-onednn-bf16"],
)
def test_cpu_support_comes_from_instruction_flags(capabilities, onednn_bf16, native, named):
    support = cpu_bf16_support(capabilities, onednn_bf16=onednn_bf16)
    assert support.native is native
    assert named in support.detail


def test_the_real_probe_agrees_with_the_cpu_flags_torch_reports():
    flags = torch.cpu.get_capabilities()
    has_instructions = any(flags.get(flag) for flag in precision_module.NATIVE_CPU_BF16)
    support = probe_bf16(CPU)
    assert support.native is (has_instructions and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert choose_precision("auto", CPU).precision == ("bf16" if support.native else "fp32")
    assert probe_bf16(torch.device("meta")).native is False


def test_a_choice_opens_the_autocast_it_names():
    with PrecisionChoice("bf16", "test", "cpu").autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with PrecisionChoice("fp32", "test", "cpu").autocast():
        assert not torch.is_autocast_enabled("cpu")
    assert describe_choice(PrecisionChoice("bf16", "auto: x", "cpu")) == "precision bf16 (auto: x)"


def test_a_job_asking_for_bf16_on_an_emulating_cpu_fails_before_loading_anything(
    engine_env, tmp_path, monkeypatch
):
    monkeypatch.setattr(precision_module, "probe_bf16", probe_of(EMULATED))
    loaded: list[object] = []

    def resolve(ref):
        loaded.append(ref)
        return engine_env.resolve_model(ref)

    spec = JobSpec.model_validate(
        {
            "teacher": {"path": "bert-sentiment"},
            "data": {"train_file": "file-sentiment", "max_length": 32},
            "method": {"type": "response"},
            "training": {"epochs": 1, "precision": "bf16"},
        }
    )
    callbacks = RecordingCallbacks()
    with pytest.raises(UserError) as raised:
        run_job(
            spec,
            workdir=tmp_path,
            resolve_model=resolve,
            resolve_file=engine_env.resolve_file,
            callbacks=callbacks,
            device="cpu",
        )
    assert raised.value.param == "training.precision"
    assert loaded == [] and callbacks.messages == []
