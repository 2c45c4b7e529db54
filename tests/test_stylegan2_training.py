"""A small StyleGAN2 trains on real anime faces through the one loop with its recipe (style mixing, lazy R1,
lazy path length, G EMA), with finite losses, and a SIGKILL resumes bit-identically across lazy steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganforge.config import LossConfig, ModelConfig, TrainConfig
from ganforge.errors import ConfigError
from ganforge.models import validate
from ganforge.models.stylegan2 import networks
from ganforge.runs.checkpoint import latest_checkpoint, load_checkpoint
from ganforge.training.objective.path_length import PathLengthPenalty
from ganforge.training.objective.regularizers import R1Penalty
from ganforge.training.step_parts import uncompiled

from data_slices import anime_store, digits16_store
from run_helpers import assert_kill_and_resume_matches, only_run, run_to_end

# Tiny widths for the CPU; batch 8 and ticks of 64 images: 8 iterations per tick, so the second tick crosses a
# path-length step (every 4 G steps) and an R1 step (every 16 D steps).
TINY = ["--model", "stylegan2", "--z-dim", "32", "--fmap-base", "256", "--fmap-max", "32", "--batch", "8",
        "--tick-kimg", "0.064", "--ema-kimg", "0.1", "--ema-rampup", "0.05", "--no-progress"]


@pytest.fixture(scope="module")
def anime16(tmp_path_factory) -> Path:
    return anime_store(tmp_path_factory.mktemp("anime"), 128, 16)


@pytest.mark.slow
def test_a_tiny_stylegan2_trains_on_anime_faces_with_its_recipe_and_finite_losses(anime16, tmp_path):
    out = run_to_end("train", "--data", str(anime16), "--out", str(tmp_path), "--kimg", "0.128", *TINY)
    run = only_run(tmp_path)
    config = json.loads((run / "config.json").read_text())["train"]
    loss = config["loss"]
    assert (loss["name"], loss["r1_gamma"], loss["r1_every"], loss["pl_weight"], loss["pl_every"]) == (
        "nonsaturating", 10.0, 16, 2.0, 4), out
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"tick"' in line]
    assert len(rows) == 2 and all(abs(r[k]) < 1e4 for r in rows for k in ("loss_d", "loss_g"))
    tensors, meta = load_checkpoint(latest_checkpoint(run))
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
    assert meta["path_length"]["g_steps"] == 16 and meta["path_length"]["pl_mean"] > 0
    assert tensors["G_ema.mapping.w_avg"].abs().sum() > 0  # tracked in G, carried into the average


@pytest.mark.slow
def test_the_small_data_preset_trains_class_conditionally_with_ada(tmp_path):
    store = digits16_store(tmp_path, 64, with_labels=True)  # 64 labelled digits at 16 px, the digits as classes
    flags = [f for f in TINY if f not in ("--model", "stylegan2")]
    run_to_end("train", "--data", str(store), "--out", str(tmp_path / "runs"), "--preset", "stylegan2-small",
               "--cond", "--kimg", "0.064", *flags)
    run = only_run(tmp_path / "runs")
    config = json.loads((run / "config.json").read_text())["train"]
    assert (config["augment"]["name"], config["loss"]["r1_gamma"], config["model"]["conditional"]) == ("ada", 1.0,
                                                                                                       True)
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if '"tick"' in line]
    assert rows and all(abs(r[k]) < 1e4 for r in rows for k in ("loss_d", "loss_g"))


@pytest.mark.slow
def test_a_sigkilled_stylegan2_run_resumes_bit_identically_across_lazy_steps(anime16, tmp_path):
    # Killed once the 64-image checkpoint exists (8 G steps): the resumed half runs path-length steps 8 and 12
    # and the R1 step at D step 16 from the saved phase and mean.
    assert_kill_and_resume_matches(["--data", str(anime16), "--kimg", "0.128", "--snap", "1", *TINY], tmp_path)


def test_the_path_length_penalty_has_the_gradient_its_formula_says() -> None:
    """On a linear 'synthesis' g(w) = A w, J^T y = A^T y exactly: compare the penalty and its gradient."""
    torch.manual_seed(0)
    a = torch.randn(12, 6, dtype=torch.float64, requires_grad=True)

    def generator(z, labels, return_ws):
        ws = z.view(z.shape[0], 1, 6).expand(-1, 2, -1) * 1.0  # two layers reading the same w
        images = torch.einsum("pw,blw->bp", a, ws).view(-1, 1, 3, 4) / 2
        return images, ws

    penalty = PathLengthPenalty(weight=2.0, every=4, device=torch.device("cpu"))
    penalty.pl_mean = penalty.pl_mean.double()
    z = torch.randn(8, 6, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(1)
    value = penalty.penalty(generator, z, None)
    torch.manual_seed(1)
    noise = torch.randn(4, 1, 3, 4, dtype=torch.float64) / (12 ** 0.5)
    grad = torch.einsum("pw,bp->bw", a, noise.flatten(1)) / 2  # d/dw of sum(g * y), per layer w
    lengths = grad.square().sum(1).sqrt()  # both layers' ws get the same gradient: the mean over layers is one
    expected = ((lengths - 0.01 * lengths.mean().detach()) ** 2).mean() * 8  # a is a constant of the step
    torch.testing.assert_close(value, expected)
    (mine,) = torch.autograd.grad(value, a)
    (theirs,) = torch.autograd.grad(expected, a)
    torch.testing.assert_close(mine, theirs)


def test_path_length_is_refused_for_a_generator_without_a_mapping_network() -> None:
    with pytest.raises(ConfigError, match="--pl-weight regularizes a style-based generator"):
        validate(TrainConfig(model=ModelConfig(name="dcgan"), loss=LossConfig(pl_weight=2.0)))
    validate(TrainConfig(model=ModelConfig(name="stylegan2"), loss=LossConfig(pl_weight=2.0)))


def test_the_generator_returns_the_ws_the_penalty_differentiates() -> None:
    torch.manual_seed(0)
    generator, _ = networks(ModelConfig(name="stylegan2", z_dim=16, fmap_base=128, fmap_max=16), (3, 8, 8))
    images, ws = generator(torch.randn(4, 16), return_ws=True)
    assert images.shape == (4, 3, 8, 8) and ws.shape == (4, generator.num_ws, 16)
    penalty = PathLengthPenalty(2.0, 4, torch.device("cpu"))
    value = penalty.penalty(generator, torch.randn(4, 16), None)
    value.backward()
    assert torch.isfinite(value) and generator.mapping.layers[0].weight.grad is not None


def test_compiled_networks_train_their_gradient_penalties_because_those_run_eagerly() -> None:
    """torch.compile's graphs cannot be differentiated twice, and `--compile` with StyleGAN2's recipe failed at
    the first R1 step; the penalties now run the networks uncompiled (`aot_eager` compiles as inductor does,
    without generating C++, so the test takes seconds)."""
    torch.manual_seed(0)
    generator, discriminator = networks(ModelConfig(name="stylegan2", z_dim=16, fmap_base=128, fmap_max=16),
                                        (3, 8, 8))
    generator.compile(backend="aot_eager")
    discriminator.compile(backend="aot_eager")
    reals, r1 = torch.randn(4, 3, 8, 8), R1Penalty(gamma=1.0, every=1)
    path_length = PathLengthPenalty(2.0, 1, torch.device("cpu"))

    def r1_term() -> torch.Tensor:
        return r1.penalty(lambda x, y=None: discriminator(x), reals, reals, torch.zeros(4), d_step=0)

    with pytest.raises(RuntimeError, match="double backward"):
        r1_term().backward()
    # A compiled G returns ws as an output of its graph, not as the tensor its images were made from.
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        path_length.penalty(generator, torch.randn(4, 16), None)
    generator.zero_grad(), discriminator.zero_grad()
    with uncompiled(generator), uncompiled(discriminator):
        total = r1_term() + path_length.penalty(generator, torch.randn(4, 16), None)
    total.backward()
    for network in (generator, discriminator):
        assert network._compiled_call_impl is not None  # compiled again outside
        assert all(torch.isfinite(p.grad).all() for p in network.parameters() if p.grad is not None)
    assert discriminator.from_rgb.weight.grad.abs().sum() > 0
    assert generator.mapping.layers[0].weight.grad.abs().sum() > 0


def test_r1_and_path_length_gradients_on_tiny_stylegan2_networks_match_finite_differences(monkeypatch) -> None:
    from ganforge.training.objective import path_length

    torch.manual_seed(0)
    generator, discriminator = networks(ModelConfig(name="stylegan2", z_dim=4, fmap_base=32, fmap_max=4), (1, 8, 8))
    generator, discriminator = generator.double().eval(), discriminator.double()
    reals = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    r1 = R1Penalty(gamma=10.0, every=16)
    d_params = dict(discriminator.named_parameters())

    def r1_of(weight: torch.Tensor) -> torch.Tensor:
        def critic(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(discriminator, {**d_params, "from_rgb.weight": weight}, (x,))
        return r1.penalty(critic, reals, reals, torch.zeros(4), d_step=0)

    assert torch.autograd.gradcheck(r1_of, (d_params["from_rgb.weight"].detach().clone().requires_grad_(),))
    z = torch.randn(4, 4, dtype=torch.float64)
    g_params = dict(generator.named_parameters())
    name = "synthesis.to_rgb.1.conv.weight"

    # The running mean a is a constant of each step (Eq. 4 differentiates ||J^T y|| only): hold it at 0.3, or the
    # finite differences would also move it.
    monkeypatch.setattr(path_length, "PL_DECAY", 0.0)

    def path_length_of(weight: torch.Tensor) -> torch.Tensor:
        penalty = PathLengthPenalty(2.0, 4, torch.device("cpu"))
        penalty.pl_mean = torch.tensor(0.3, dtype=torch.float64)
        torch.manual_seed(1)  # the same projection noise y on every evaluation

        def g(latents: torch.Tensor, labels: torch.Tensor | None, return_ws: bool) -> tuple[torch.Tensor, ...]:
            return torch.func.functional_call(generator, {**g_params, name: weight}, (latents, labels),
                                              {"return_ws": return_ws})
        return penalty.penalty(g, z, None)

    assert torch.autograd.gradcheck(path_length_of, (g_params[name].detach().clone().requires_grad_(),))
