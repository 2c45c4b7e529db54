import pytest
import torch
import torch.nn.functional as F

from ganforge.config import ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.models import fastgan, validate

from data_slices import SHARED_DATA, read_idx

TINY = {"name": "fastgan", "z_dim": 16, "g_width": 8, "d_width": 8}


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _mnist_64(count: int) -> torch.Tensor:
    """Real MNIST digits padded to 32 px and nearest-upsampled to 64 px, in [-1, 1]: [count, 1, 64, 64]."""
    digits = torch.from_numpy(read_idx(SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz", count).copy())
    images = F.pad(digits[:, None].float() / 127.5 - 1, (2, 2, 2, 2), value=-1.0)
    return F.interpolate(images, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 64, 64), (3, 128, 128), (3, 64, 96), (1, 64, 96)])
def test_generator_matches_store_shape_and_discriminator_gives_finite_patch_logits(shape):
    torch.manual_seed(0)
    G, D = fastgan.build(ModelConfig(**TINY), shape)
    images = G(torch.randn(3, 16))
    assert images.shape == (3, *shape)
    assert images.min() >= -1 and images.max() <= 1
    logits = D(images)
    assert logits.dim() == 2 and logits.shape[0] == 3 and torch.isfinite(logits).all()


def test_reconstruction_loss_is_a_positive_scalar_whose_gradient_reaches_all_three_decoders():
    torch.manual_seed(0)
    _, D = fastgan.build(ModelConfig(**TINY), (3, 64, 96))
    logits, loss = D.forward_with_reconstruction(torch.rand(2, 3, 64, 96) * 2 - 1)
    assert loss.dim() == 0 and torch.isfinite(loss) and loss > 0
    assert logits.shape == D(torch.zeros(2, 3, 64, 96)).shape
    loss.backward()
    for name in ("decoder_big", "decoder_part", "decoder_small"):
        grads = [p.grad for p in getattr(D, name).parameters()]
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads), name


def test_reconstruction_quarter_is_drawn_from_the_generator_passed_in():
    torch.manual_seed(0)
    _, D = fastgan.build(ModelConfig(**TINY), (1, 64, 64))
    D.eval()  # fixed BatchNorm statistics and spectral-norm vectors: only the quarter can change the loss
    images = _mnist_64(4)
    losses = [D.forward_with_reconstruction(images, generator=torch.Generator().manual_seed(seed))[1]
              for seed in (5, 5, *range(12))]
    assert torch.equal(losses[0], losses[1])
    assert len({round(loss.item(), 6) for loss in losses[2:]}) > 1  # different seeds reach different quarters


def test_discriminator_decoders_learn_to_reconstruct_real_digits():
    torch.manual_seed(0)
    _, D = fastgan.build(ModelConfig(**TINY), (1, 64, 64))
    images = _mnist_64(4)
    optimizer = torch.optim.Adam(D.parameters(), lr=2e-3)

    def loss_at(seed: int) -> torch.Tensor:
        return D.forward_with_reconstruction(images, generator=torch.Generator().manual_seed(seed))[1]

    before = sum(loss_at(seed).item() for seed in range(4))
    for step in range(8):
        optimizer.zero_grad()
        loss_at(step).backward()
        optimizer.step()
    after = sum(loss_at(seed).item() for seed in range(4))
    assert after < 0.5 * before


@pytest.mark.parametrize("shape", [(3, 48, 48), (3, 32, 32), (3, 64, 72), (3, 2048, 2048)])
def test_shapes_fastgan_cannot_reach_are_refused_naming_the_store_resolution(shape):
    with pytest.raises(ConfigError, match="--resolution"):
        fastgan.build(ModelConfig(**TINY), shape)


@pytest.mark.parametrize("options", [{"mbstd": True}, {"d_dropout": 0.3}, {"d_batchnorm": False},
                                     {"g_activation": "lrelu"}, {"spectral_norm": True}])
def test_flags_fastgan_would_ignore_are_refused(options):
    with pytest.raises(ConfigError, match="--model fastgan does not use"):
        validate(TrainConfig(model=ModelConfig(**TINY, **options)))


def test_64_px_keeps_one_skip_excitation_from_4_px_and_1024_px_has_the_papers_layout():
    g64, d64 = fastgan.build(ModelConfig(**TINY), (3, 64, 64))
    assert set(g64.sle) == {"4"} and set(d64.sle) == {"1"}  # G: 4 -> 64 px; D: 64 -> 8 px
    config = ModelConfig(name="fastgan", z_dim=256, g_width=64, d_width=64)  # the paper's nz, ngf, ndf
    g1024, d1024 = fastgan.build(config, (3, 1024, 1024))
    assert set(g1024.sle) == {"4", "5", "6", "7"}  # 4->64, 8->128, 16->256, 32->512 px
    assert set(d1024.sle) == {"1", "2", "3"}  # 64->8, 128->16, 256->32 px
    assert sum(isinstance(m, fastgan.NoiseInjection) for m in g1024.modules()) == 8  # 4 UpBlockComps x 2
    assert 25e6 < _count(g1024) < 35e6 and 8e6 < _count(d1024) < 15e6


def test_conditional_generator_follows_labels_and_discriminator_needs_them():
    torch.manual_seed(0)
    G, D = fastgan.build(ModelConfig(**TINY, conditional=True, num_classes=3), (3, 64, 64))
    G.eval()
    z = torch.randn(2, 16)
    torch.manual_seed(1)
    first = G(z, torch.tensor([0, 0]))
    torch.manual_seed(1)  # same injected noise: only the labels differ
    assert not torch.allclose(first, G(z, torch.tensor([2, 2])))
    logits = D(first, torch.tensor([0, 0]))
    assert logits.shape[0] == 2 and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="labels"):
        D(first)


def test_a_seed_renders_the_same_image_in_any_batch_and_after_any_draw_once_noise_is_learned():
    torch.manual_seed(0)
    G, _ = fastgan.build(ModelConfig(**TINY), (3, 64, 64))
    for layer in G.modules():
        if isinstance(layer, fastgan.NoiseInjection):
            layer.weight.data.fill_(0.5)  # a trained G's noise matters; a fresh one's weight is 0
    G.eval()
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        alone = G(z[:1])
        torch.rand(1000)  # whatever else the process draws in between
        in_a_batch = G(z)
    assert torch.allclose(alone[0], in_a_batch[0], atol=1e-5)  # the kernels of batch 1 and 4 round apart
    G.train()
    with torch.no_grad():  # training keeps drawing fresh noise (its BatchNorm aside, the difference is the noise)
        G.eval()
        fixed = G(z)
        for layer in G.modules():
            if isinstance(layer, fastgan.NoiseInjection):
                layer.train()
        drawn = G(z)
    assert not torch.equal(fixed, drawn)
