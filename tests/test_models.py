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
    assert isinstance(g_layers[-1], torch.nn.Tanh)
    first_d_block = nets.discriminator.blocks[0]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in first_d_block)  # no BN on D's input layer
    assert any(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == 0.2 for m in first_d_block)


def test_dcgan_d_dropout_is_applied():
    nets = build_networks(ModelConfig(d_dropout=0.3), (1, 28, 28))
    assert sum(isinstance(m, torch.nn.Dropout) for m in nets.discriminator.modules()) == 2


def test_unknown_model_and_unreachable_resolution_give_clear_errors():
    with pytest.raises(ConfigError, match="dcgan, mlp"):
        build_networks(ModelConfig(name="stylegan9"), (1, 28, 28))
    with pytest.raises(ConfigError, match="--resolution"):
        build_networks(ModelConfig(), (3, 17, 17))
