"""The autoencoder's fast CPU path (channels-last layout, bfloat16 option) against the NCHW
float32 reference path, and ``qd bench ae``."""

import json

import pytest
import torch

from qd.behaviour.autoencoder import (
    AETrainingConfig,
    ConvAE,
    describe,
    set_layout,
    to_input,
    train_autoencoder,
)
from qd.behaviour.learned import AutoencoderSpace
from tests.test_autoencoder import discs

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return discs(48, seed=5)


def test_to_input_channels_last_has_the_same_values(frames):
    nchw = to_input(frames)
    nhwc = to_input(frames, channels_last=True)
    assert nhwc.is_contiguous(memory_format=torch.channels_last) and nchw.is_contiguous()
    assert torch.equal(nchw, nhwc)
    floats = to_input(nchw, channels_last=True)
    assert floats.is_contiguous(memory_format=torch.channels_last) and torch.equal(floats, nchw)


def test_set_layout_keeps_parameters_and_values():
    model = ConvAE(seed=0)
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    set_layout(model, True)
    assert model.encoder_conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    set_layout(model, False)
    assert model.encoder_conv[0].weight.is_contiguous()
    assert all(a is b for a, b in zip(params, model.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before, params, strict=True))


def test_describe_layouts_agree(frames):
    model = ConvAE(seed=2)
    z_ref, s_ref = describe(model, frames, channels_last=False)
    z, s = describe(model, frames, channels_last=True)
    torch.testing.assert_close(z, z_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-7)


def test_training_layouts_agree_and_each_is_deterministic(frames):
    def run(channels_last: bool):
        model = ConvAE(seed=1)
        config = AETrainingConfig(batch_size=16, max_epochs=2, seed=3, channels_last=channels_last)
        return model, train_autoencoder(model, frames, config)

    (_, r_ref), (m1, r1), (m2, r2) = run(False), run(True), run(True)
    assert r1.val_losses == r2.val_losses and r1.train_losses == r2.train_losses
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    assert r1.initial_val_loss == pytest.approx(r_ref.initial_val_loss, rel=1e-6)
    assert r1.val_losses == pytest.approx(r_ref.val_losses, rel=1e-3)
    assert r1.train_losses == pytest.approx(r_ref.train_losses, rel=1e-3)


def test_bfloat16_training_option(frames):
    config = AETrainingConfig(batch_size=16, max_epochs=2, seed=3)
    ref = train_autoencoder(ConvAE(seed=1), frames, config)
    bf16 = AETrainingConfig(batch_size=16, max_epochs=2, seed=3, precision="bfloat16")
    report = train_autoencoder(ConvAE(seed=1), frames, bf16)
    assert report.initial_val_loss == ref.initial_val_loss  # validation stays float32
    assert report.val_losses != ref.val_losses
    assert report.val_losses == pytest.approx(ref.val_losses, rel=0.05)
    with pytest.raises(ValueError, match="precision"):
        AETrainingConfig(precision="float16")
    from qd.algorithms.taxons import TaxonsConfig

    with pytest.raises(ValueError, match="precision"):
        TaxonsConfig(ae_precision="half")


def test_space_state_after_channels_last_training_resumes_exactly(frames):
    from safetensors.torch import load, save

    stacked = frames.reshape(-1, 1, 64, 64, 3)
    config = AETrainingConfig(batch_size=16, max_epochs=1)
    whole = AutoencoderSpace(latent_dim=4, seed=0)
    whole.fit(stacked, config)
    state = {k: v.clone() for k, v in whole.state_tensors().items()}  # a snapshot, as saved
    assert all(t.is_contiguous() for t in whole.state_tensors().values())
    second = whole.fit(stacked, config)
    resumed = AutoencoderSpace(latent_dim=4, seed=0)
    resumed.load_state_tensors(load(save(state)))  # through safetensors, as checkpoints do
    again = resumed.fit(stacked, config)
    assert again.val_losses == second.val_losses
    z1, s1 = whole.describe_frames(stacked)
    z2, s2 = resumed.describe_frames(stacked)
    assert torch.equal(z1, z2) and torch.equal(s1, s2)


def test_bench_ae_cli_reports_ratios_against_reference(capsys):
    from qd.cli import main

    argv = ["bench", "ae", "--images", "24", "--epochs", "1", "--encode", "30", "--steps", "20"]
    assert main([*argv, "--repeats", "1", "--bf16", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["mode"] for r in rows] == ["reference", "channels_last", "bfloat16"]
    ref = rows[0]
    assert ref["train_ratio_vs_reference"] == 1.0 and ref["encode_ratio_vs_reference"] == 1.0
    assert ref["max_latent_diff"] == 0.0 and ref["max_val_loss_diff"] == 0.0
    assert rows[1]["max_latent_diff"] < 1e-4 and rows[1]["max_val_loss_diff"] < 1e-5
    assert all(r["train_s"] > 0 and r["encode_s"] > 0 and r["images"] == 24 for r in rows)
    assert main([*argv, "--repeats", "1"]) == 0
    assert "x1.00" in capsys.readouterr().out
    assert main(["bench", "ae", "--images", "1"]) == 2
    assert "images" in capsys.readouterr().err
