"""TAXONS/STAX autoencoder behaviour space (qd.behaviour.autoencoder).

Kept cheap for a slow shared CPU: a few hundred synthetic 64x64 frames (coloured discs at
random positions on a dark background) and a handful of epochs in all.
"""

import math

import pytest
import torch
from torch import nn

from qd.behaviour.autoencoder import (
    FEATURES,
    AETrainingConfig,
    ConvAE,
    describe,
    to_input,
    train_autoencoder,
    training_points,
    training_schedule,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def discs(n: int, seed: int = 0) -> torch.Tensor:
    """``[n, 64, 64, 3]`` uint8 frames: one coloured disc (radius 6) at a random position."""
    gen = torch.Generator().manual_seed(seed)
    centre = torch.rand(n, 2, generator=gen) * 52 + 6
    colour = torch.randint(80, 256, (n, 3), generator=gen, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    d2 = (xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2
    inside = (d2 <= 36)[..., None]
    background = torch.full((n, 64, 64, 3), 20, dtype=torch.uint8)
    return torch.where(inside, colour[:, None, None, :], background)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return discs(200)


class ConstantImage(nn.Module):
    """Stub model reconstructing every image as one learnable colour."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.colour = nn.Parameter(torch.full((1, 3, 1, 1), value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.colour.expand_as(x)


def test_shapes_and_architecture():
    model = ConvAE(seed=0)
    x = discs(4)
    assert model.latent_dim == 10 and FEATURES == 256
    assert model.features(x).shape == (4, 256)
    before_flatten = model.encoder_conv[:-1](to_input(x))
    assert before_flatten.shape == (4, 16, 4, 4)
    z = model.encode(x)
    assert z.shape == (4, 10)
    rec = model.decode(z)
    assert rec.shape == (4, 3, 64, 64) and (rec >= 0).all()  # ReLU output
    assert torch.equal(model(x), rec)
    assert ConvAE(latent_dim=3, seed=0).encode(x).shape == (4, 3)
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert [(m.in_channels, m.out_channels) for m in convs] == [
        (3, 32), (32, 64), (64, 32), (32, 16), (16, 32), (32, 64), (64, 32), (32, 3)
    ]  # fmt: skip
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) for m in convs)
    assert isinstance(model.encoder_fc[-1], nn.SELU)  # the latent code is SELU-activated
    # seeded init is reproducible and leaves the global RNG alone
    state = torch.random.get_rng_state()
    other = ConvAE(seed=0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters(), strict=True)
    )


def test_uint8_conversion():
    x = discs(3)
    img = to_input(x)
    assert img.dtype == torch.float32 and img.shape == (3, 3, 64, 64)
    assert img.is_contiguous()
    assert torch.equal(img, x.permute(0, 3, 1, 2).float() / 255)
    assert img.min() >= 0 and img.max() <= 1
    assert torch.equal(to_input(img), img)  # float input passes through
    assert torch.equal(to_input(img.double()), img)
    assert ConvAE.to_input is to_input
    model = ConvAE(seed=0)
    assert torch.equal(model.encode(x), model.encode(img))


def test_training_reduces_validation_loss(frames):
    model = ConvAE(seed=0)
    config = AETrainingConfig(batch_size=16, max_epochs=4, seed=0)
    report = train_autoencoder(model, frames, config)
    assert report.n_val == 40 and report.n_train == 160
    assert report.epochs == 4 and not report.stopped_early
    assert len(report.train_losses) == len(report.val_losses) == 4
    assert report.val_losses[-1] < 0.7 * report.initial_val_loss
    assert sorted(report.val_losses, reverse=True) == report.val_losses
    assert report.train_losses[-1] < report.train_losses[0]
    assert report.best_val_loss == min(report.val_losses)
    assert report.seconds > 0 and not model.training


def test_determinism_for_a_seed(frames):
    subset = frames[:48]
    config = AETrainingConfig(batch_size=16, max_epochs=2, seed=3)
    runs = []
    for _ in range(2):
        model = ConvAE(seed=1)
        runs.append((model, train_autoencoder(model, subset, config)))
    (m1, r1), (m2, r2) = runs
    assert r1.train_losses == r2.train_losses and r1.val_losses == r2.val_losses
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters(), strict=True))
    # an explicit generator gives the same result as the same seed
    m3 = ConvAE(seed=1)
    r3 = train_autoencoder(m3, subset, config, generator=torch.Generator().manual_seed(3))
    assert r3.val_losses == r1.val_losses
    # another split seed gives another run
    other = AETrainingConfig(batch_size=16, max_epochs=2, seed=4)
    assert train_autoencoder(ConvAE(seed=1), subset, other).val_losses != r1.val_losses


def test_early_stopping_when_validation_keeps_rising(frames):
    # gradient ascent moves the colour away from the (dark) images: every epoch is worse
    model = ConstantImage(0.5)
    ascent = torch.optim.SGD(model.parameters(), lr=0.01, maximize=True)
    config = AETrainingConfig(batch_size=32, max_epochs=50, patience=4, seed=0)
    report = train_autoencoder(model, frames, config, optimizer=ascent)
    assert all(b > a for a, b in zip(report.val_losses[:-1], report.val_losses[1:], strict=True))
    assert report.epochs == 5 and report.stopped_early  # best at epoch 1, then 4 rises
    assert report.best_epoch == 1 and report.best_val_loss == report.val_losses[0]
    # no early stop without patience; restore_best rolls back to the best epoch
    model = ConstantImage(0.5)
    ascent = torch.optim.SGD(model.parameters(), lr=0.01, maximize=True)
    config = AETrainingConfig(batch_size=32, max_epochs=6, patience=None, seed=0, restore_best=True)
    report = train_autoencoder(model, frames, config, optimizer=ascent)
    assert report.epochs == 6 and not report.stopped_early
    with torch.no_grad():
        img = to_input(frames)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    val = img[perm[:40]]
    assert math.isclose(
        (model.colour - val).square().mean().item(), report.val_losses[0], rel_tol=1e-5
    )


def test_patience_counts_consecutive_rises_only():
    class Scripted(nn.Module):
        """Validation errors follow a script; training does nothing."""

        def __init__(self, script: list[float]) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(()))
            self.script, self.evals = script, -1  # the first eval is the initial one

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if not self.training:
                self.evals += 1
                x = x + math.sqrt(self.script[max(self.evals - 1, 0)])
            return x + 0 * self.weight

    script = [1.0, 2.0, 3.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    config = AETrainingConfig(batch_size=8, max_epochs=20, patience=4, seed=0)
    frames = torch.zeros(10, 64, 64, 3, dtype=torch.uint8)
    report = train_autoencoder(Scripted(script), frames, config)
    assert report.val_losses == pytest.approx(script[:8])
    assert report.epochs == 8 and report.stopped_early and report.best_epoch == 4


def test_describe_chunking_and_multiframe(frames):
    model = ConvAE(seed=0)
    x = frames[:50]
    z, s = describe(model, x)
    assert z.shape == (50, 10) and s.shape == (50,)
    z7, s7 = describe(model, x, batch=7)
    torch.testing.assert_close(z7, z, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s7, s, rtol=1e-5, atol=1e-7)
    with torch.no_grad():
        img = to_input(x)
        expected = (model(img) - img).square().mean(dim=(1, 2, 3))
    torch.testing.assert_close(s, expected, rtol=1e-5, atol=1e-7)
    # several frames per episode: latents concatenated in frame order, surprise summed
    multi = x.reshape(10, 5, 64, 64, 3)
    zm, sm = describe(model, multi, batch=8)
    assert zm.shape == (10, 50) and sm.shape == (10,)
    torch.testing.assert_close(zm, z.reshape(10, 50), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(zm[1, 10:20], z[6], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sm, s.reshape(10, 5).sum(1), rtol=1e-5, atol=1e-7)
    assert describe(model, x[:0])[0].shape == (0, 10)
    assert model.training  # describe restores the mode


def test_multiframe_training_uses_every_frame(frames):
    multi = frames[:20].reshape(10, 2, 64, 64, 3)
    config = AETrainingConfig(max_epochs=1, seed=0)
    report = train_autoencoder(ConvAE(seed=0), multi, config)
    assert (report.n_train, report.n_val) == (16, 4)


def test_training_schedule():
    assert training_points(6) == [1, 3, 6, 10, 15, 21]
    assert [c for c in range(1, 29) if training_schedule(c)] == [1, 3, 6, 10, 15, 21, 28]
    assert training_schedule(5050) and not training_schedule(5051)
    with pytest.raises(ValueError, match="1-based"):
        training_schedule(0)


def test_errors(frames):
    model = ConvAE(seed=0)
    config = AETrainingConfig(max_epochs=1, seed=0)
    channels_first = frames[:4].permute(0, 3, 1, 2).contiguous()
    with pytest.raises(ValueError, match=r"uint8 frames of shape \[N, 64, 64, 3\]"):
        train_autoencoder(model, channels_first, config)
    with pytest.raises(ValueError, match=r"\[N, 64, 64, 3\].*got shape \(4, 32, 32, 3\)"):
        describe(model, frames[:4, :32, :32])
    with pytest.raises(TypeError, match=r"uint8 frames of shape \[N, 64, 64, 3\].*float32"):
        describe(model, frames[:4].float())
    with pytest.raises(ValueError, match="at least 2 images"):
        train_autoencoder(model, frames[:1], config)
    with pytest.raises(ValueError, match=r"float images of shape \[B, 3, 64, 64\]"):
        to_input(torch.zeros(2, 64, 64, 3))
    with pytest.raises(TypeError, match="dtype torch.int64"):
        to_input(torch.zeros(2, 64, 64, 3, dtype=torch.long))
    with pytest.raises(FloatingPointError, match="not finite at epoch 1"):
        train_autoencoder(ConstantImage(math.nan), frames[:10], config)
    with pytest.raises(ValueError, match="val_fraction"):
        AETrainingConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="patience"):
        AETrainingConfig(patience=0)
