"""Compile and export: single-dataset models export and compile with `fullgraph=True`; a ViTPose+ model called with
one dataset for the whole batch compiles without graph breaks; returned hidden states keep their autograd history."""

from __future__ import annotations

import pytest
import torch
from helpers import make_model, tiny_config, tiny_plus_config


@pytest.fixture(scope="module")
def dense():
    return make_model(tiny_config(decoder_type="simple")).eval()


@pytest.fixture(scope="module")
def plus():
    return make_model(tiny_plus_config()).eval()


def _x(config, n=2, seed=0):
    return torch.randn(n, 3, *config.image_size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which", ["dense", "merged"])
def test_single_dataset_model_exports(which, dense, plus):
    model = dense if which == "dense" else plus.merge_experts("aic").eval()
    x = _x(model.config)
    with torch.no_grad():
        expected = model(x).heatmaps
    program = torch.export.export(model, (x,), strict=False)
    with torch.no_grad():
        exported = program.module()(x).heatmaps
        other_batch = program.module()(_x(model.config, seed=1)).heatmaps
    torch.testing.assert_close(exported, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(other_batch, model(_x(model.config, seed=1)).heatmaps, atol=1e-6, rtol=0)


def test_single_dataset_model_compiles_fullgraph(dense):
    torch._dynamo.reset()
    compiled = torch.compile(dense, fullgraph=True, backend="aot_eager")  # fullgraph: any graph break is an error
    x = _x(dense.config)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x).heatmaps, dense(x).heatmaps, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dataset", [1, "mpii"])
def test_plus_model_with_one_dataset_has_no_graph_break(plus, dataset):
    torch._dynamo.reset()
    x = _x(plus.config)
    with torch.no_grad():
        explanation = torch._dynamo.explain(plus)(x, dataset_index=dataset)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        compiled = torch.compile(plus, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x, dataset_index=dataset).heatmaps,
                                   plus(x, dataset_index=dataset).heatmaps, atol=1e-6, rtol=0)


def test_hidden_states_keep_autograd_on_mixed_batches(plus):
    model = plus.train()
    try:
        x = _x(model.config, n=4)
        out = model(x, dataset_index=torch.tensor([2, 0, 1, 0]), output_hidden_states=True, output_attentions=True)
        assert len(out.hidden_states) == model.config.num_hidden_layers + 1
        for tensor in (*out.hidden_states, *out.attentions):
            assert tensor.requires_grad and tensor.grad_fn is not None
        middle = out.hidden_states[1]
        middle.retain_grad()
        out.heatmaps.sum().backward()
        assert middle.grad is not None and middle.grad.abs().sum() > 0
        # batch order is kept: the hidden state of sample 1 (dataset 0) equals that of the sample run alone
        with torch.no_grad():
            alone = model.eval()(x[1:2], dataset_index=0, output_hidden_states=True).hidden_states[-1]
            torch.testing.assert_close(model(x, dataset_index=torch.tensor([2, 0, 1, 0]),
                                             output_hidden_states=True).hidden_states[-1][1:2], alone,
                                       atol=1e-5, rtol=0)
    finally:
        model.eval()
