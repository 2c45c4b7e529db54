import pytest
import torch

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.models import build_networks


@pytest.mark.parametrize("name", ["dcgan", "mlp"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 64, 64), (3, 128, 128), (3, 32, 64)])
def test_generator_output_matches_store_shape_and_range(name, shape):
    torch.manual_seed(0)
    nets = build_networks(ModelConfig(name=name, g_width=8, d_width=8), shape)
    images = nets.generator(torch.randn(2, nets.z_dim))
    assert images.shape == (2, *shape)
    assert images.min() >= -1 and images.max() <= 1
    assert nets.discriminator(images).shape == (2,)


def test_dcgan_64_matches_the_pytorch_example_size():
    # ngf = ndf = 64 at 64x64x3 is the PyTorch DCGAN example: 3,576,704 G and 2,765,568 D parameters.
    nets = build_networks(ModelConfig(), (3, 64, 64))
    assert sum(p.numel() for p in nets.generator.parameters()) == 3_576_704
    # D: the example's 2,765,568 plus the biases of the BN-free input conv (64) and of the head (1).
    assert sum(p.numel() for p in nets.discriminator.parameters()) == 2_765_568 + 64 + 1


def test_dcgan_follows_radford_rules():
    nets = build_networks(ModelConfig(), (3, 64, 64))
    g_layers = list(nets.generator.modules())
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in g_layers)
    first_d_block = nets.discriminator.blocks[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in first_d_block)  # no BN on D's input layer
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in first_d_block)


def test_dcgan_d_dropout_is_applied():
    nets = build_networks(ModelConfig(d_dropout=0.3), (1, 28, 28))
    assert sum(isinstance(m, torch.nn.Dropout) for m in nets.discriminator.modules()) == 2


@pytest.mark.parametrize("name", ["dcgan", "mlp"])
@pytest.mark.parametrize("options", [{"spectral_norm": True}, {"mbstd": True}, {"g_upsample": "resize"},
                                     {"conditional": True, "num_classes": 10}])
def test_model_options_build_and_run(name, options):
    nets = build_networks(ModelConfig(name=name, g_width=8, d_width=8, **options), (1, 28, 28))
    labels = torch.tensor([3, 7, 7, 1]) if options.get("conditional") else None
    images = nets.generator(torch.randn(4, nets.z_dim), labels)
    logits = nets.discriminator(images, labels)
    assert images.shape == (4, 1, 28, 28) and logits.shape == (4,)
    logits.sum().backward()


def test_spectral_norm_keeps_d_layers_near_unit_spectral_norm():
    nets = build_networks(ModelConfig(spectral_norm=True, d_width=8), (1, 28, 28))
    nets.discriminator.train()
    for _ in range(20):  # power iteration converges over forward passes
        nets.discriminator(torch.randn(2, 1, 28, 28))
    conv = nets.discriminator.blocks[1][0]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in nets.discriminator.modules())


def test_minibatch_stddev_sees_a_collapsed_batch():
    from ganforge.models.layers import MinibatchStdDev

    collapsed = torch.ones(8, 3, 4, 4)
    varied = torch.randn(8, 3, 4, 4)
    assert MinibatchStdDev()(collapsed)[:, -1].max() < 1e-3 < MinibatchStdDev()(varied)[:, -1].min()


def test_unknown_model_and_unreachable_resolution_give_clear_errors():
    with pytest.raises(ConfigError, match="choose one of: aae, .*dcgan, fastgan, mlp, .*progan"):
        build_networks(ModelConfig(name="stylegan9"), (1, 28, 28))
    with pytest.raises(ConfigError, match="--resolution"):
        build_networks(ModelConfig(), (3, 17, 17))


def _convs_3x3_stride_1(module: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) and m.stride == (1, 1)
               for m in module.modules())


@pytest.mark.parametrize("extra", [1, 2])
@pytest.mark.parametrize("shape, resolutions", [((1, 28, 28), 3), ((3, 64, 64), 5), ((3, 32, 64), 4)])
def test_dcgan_extra_convs_add_refinements_at_every_resolution(extra, shape, resolutions):
    options = {"conditional": True, "num_classes": 3} if extra == 2 else {"spectral_norm": True}
    nets = build_networks(ModelConfig(g_width=8, d_width=8, extra_convs=extra, **options), shape)
    labels = torch.tensor([0, 2]) if extra == 2 else None
    images = nets.generator(torch.randn(2, nets.z_dim), labels)
    assert images.shape == (2, *shape) and nets.discriminator(images, labels).shape == (2,)
    # G: `extra` at each resolution from the start size up, plus the 3x3 conv that makes the pixels; D the same
    # count, its first being the input layer at full size.
    assert _convs_3x3_stride_1(nets.generator) == resolutions * extra + 1
    assert _convs_3x3_stride_1(nets.discriminator) == resolutions * extra
    assert _convs_3x3_stride_1(build_networks(ModelConfig(g_width=8, d_width=8), shape).generator) == 0
