from pathlib import Path

import pytest
import torch

from tabml.training.model import ModelConfig, TabularNet
from tabml.training.trained_model import load_model, save_model

CONFIG = {"n_numeric": 5, "cardinalities": [4, 7], "hidden_sizes": [16], "dropout": 0.1, "embedding_dim": 4}
CONFIG |= {"output_dim": 3, "token_dim": 16, "transformer_blocks": 2, "attention_heads": 4}


@pytest.mark.parametrize("kind", ["mlp", "embedding_mlp", "ft_transformer"])
def test_every_architecture_scores_a_batch_and_reloads_from_safetensors_to_the_same_outputs(
    tmp_path: Path, kind: str
) -> None:
    torch.manual_seed(0)
    net = TabularNet(ModelConfig.model_validate({**CONFIG, "kind": kind})).eval()
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
