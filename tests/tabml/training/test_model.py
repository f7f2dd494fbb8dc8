from pathlib import Path

import pytest
import torch

from tabml.training.model import TabularNet
from tabml.training.model_config import ModelConfig
from tabml.training.trained_model import load_model, save_model

CONFIG = {"n_numeric": 5, "cardinalities": [4, 7], "hidden_sizes": [16], "dropout": 0.1, "embedding_dim": 4}
CONFIG |= {"output_dim": 3, "token_dim": 16, "transformer_blocks": 2, "attention_heads": 4}


TABM = {"task": "multiclass", "ensemble_size": 4, "ple_columns": [1, 3], "linear_columns": [0, 2]}
TABM |= {"ple_bins": [[-1.0, 0.0, 1.0, 2.0], [0.0, 1.0]]}


@pytest.mark.parametrize("kind", ["tabm", "mlp", "embedding_mlp", "ft_transformer"])
def test_every_architecture_scores_a_batch_and_reloads_from_safetensors_to_the_same_outputs(
    tmp_path: Path, kind: str
) -> None:
    torch.manual_seed(0)
    extra = TABM if kind == "tabm" else {}
    net = TabularNet(ModelConfig.model_validate({**CONFIG, **extra, "kind": kind})).eval()
    x_num, x_cat = torch.randn(10, 5), torch.randint(0, 4, (10, 2))
    out = net(x_num, x_cat)
    assert out.shape == (10, 3) and torch.isfinite(out).all()
    save_model(net, tmp_path)
    assert torch.equal(load_model(tmp_path)(x_num, x_cat), out)


def test_ft_transformer_learns_an_interaction_a_linear_model_cannot() -> None:
    torch.manual_seed(0)
    x = torch.randn(512, 2)
    y = (x[:, 0] * x[:, 1] > 0).float()
    config = {**CONFIG, "kind": "ft_transformer", "n_numeric": 2, "cardinalities": [], "output_dim": 1}
    net = TabularNet(ModelConfig.model_validate({**config, "dropout": 0.0}))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    for _ in range(150):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            net(x, torch.zeros(512, 0, dtype=torch.long))[:, 0], y
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    accuracy = ((net(x, torch.zeros(512, 0, dtype=torch.long))[:, 0] > 0).float() == y).float().mean()
    assert accuracy > 0.9  # XOR-like: a linear model stays near 0.5


def test_a_config_saved_before_the_transformer_option_still_loads() -> None:
    old = {k: v for k, v in CONFIG.items() if k not in ("token_dim", "transformer_blocks", "attention_heads")}
    assert ModelConfig.model_validate({**old, "kind": "mlp"}).kind == "mlp"


def test_tabm_predicts_the_mean_of_its_members_probabilities() -> None:
    torch.manual_seed(0)
    for task, out in (("binary", 1), ("multiclass", 3), ("regression", 1)):
        config = ModelConfig.model_validate({**CONFIG, **TABM, "kind": "tabm", "task": task, "output_dim": out})
        net = TabularNet(config).eval()
        x_num, x_cat = torch.randn(6, 5), torch.randint(0, 4, (6, 2))
        members, combined = net.members(x_num, x_cat), net(x_num, x_cat)
        assert members.shape == (6, 4, out)
        if task == "binary":
            assert torch.allclose(torch.sigmoid(combined[:, 0]), torch.sigmoid(members[..., 0]).mean(1), atol=1e-6)
        elif task == "multiclass":
            assert torch.allclose(torch.softmax(combined, 1), torch.softmax(members, -1).mean(1), atol=1e-6)
        else:
            assert torch.allclose(combined, members.mean(1), atol=1e-6)


def test_piecewise_linear_embedding_extends_linearly_beyond_the_training_range() -> None:
    from tabml.training.tabm import PiecewiseLinearEmbedding

    ple = PiecewiseLinearEmbedding([[0.0, 1.0, 2.0, 4.0]], dim=1)
    x = torch.tensor([[-1.0], [0.5], [3.0], [8.0]])
    encoded = torch.minimum(torch.maximum(torch.addcmul(ple.bias, ple.weight, x[..., None]), ple.lower), ple.upper)
    assert encoded[:, 0].tolist() == [[-1.0, 0.0, 0.0], [0.5, 0.0, 0.0], [1.0, 1.0, 0.5], [1.0, 1.0, 3.0]]


def test_the_older_networks_clamp_the_unclipped_robust_view_themselves() -> None:
    torch.manual_seed(0)
    net = TabularNet(ModelConfig.model_validate({**CONFIG, "kind": "mlp", "clip_columns": [1]})).eval()
    x_num, x_cat = torch.randn(4, 5), torch.randint(0, 4, (4, 2))
    wild = x_num.clone()
    wild[:, 1] = torch.tensor([50.0, -50.0, 5.0, -5.0])
    clipped = wild.clone()
    clipped[:, 1] = torch.tensor([5.0, -5.0, 5.0, -5.0])
    assert torch.equal(net(wild, x_cat), net(clipped, x_cat))
