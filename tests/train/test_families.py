"""zoo/train/families.py: training passes beyond the contract are chosen by family name."""

from zoo import registry
from zoo.train.families import HOOKS, TrainingHooks, families_with, hooks


def test_hooks_name_registered_families_and_default_to_none():
    assert set(HOOKS) <= set(registry.FAMILIES)
    assert hooks("wavtokenizer") == TrainingHooks()  # a family without hooks gets an empty set
    assert families_with("continuous_forward") == ["one_d_piece", "vat"]
    assert families_with("proxy_forward") == ["one_d_piece"]
    assert families_with("repa_encoder") == ["flextok"]
    assert families_with("flow_forward") == families_with("flow_noise_shape") == ["flextok", "selftok"]
    assert hooks("flextok").fsdp_forward_methods == ("decoder.condition", "decoder.uncondition")
    assert families_with("fsdp_forward_methods") == ["flextok", "selftok", "vat"]


def test_fsdp_forward_methods_are_methods_of_top_level_children():
    """zoo.train.distributed.wrap registers each on a top-level child (an FSDP2 shard unit)."""
    for name in families_with("fsdp_forward_methods"):
        spec = registry.family(name)
        model = spec.tokenizer(spec.tiny_config)
        for method in hooks(name).fsdp_forward_methods:
            child, _, attr = method.partition(".")
            assert child in dict(model.named_children()) and callable(getattr(getattr(model, child), attr)), method


def test_flow_hooks_are_the_models_passes():
    """train_flow_decoder.py calls hooks(family).flow_forward(model, x, t=, noise=): FlexTok's and Selftok's own."""
    for name in families_with("flow_forward"):
        spec = registry.family(name)
        h = hooks(name)
        assert h.flow_forward is spec.tokenizer.flow_forward and h.flow_noise_shape is spec.tokenizer.flow_noise_shape


def test_hooks_reach_the_model():
    import torch

    from zoo.train import distributed as zd

    spec = registry.family("one_d_piece")
    model = spec.tokenizer(spec.variants[0].config)
    h = hooks(model.family)
    assert h.proxy_classes(model) == model.cfg.proxy_codebook_size
    model.train()
    x, _ = model.example_input(1, torch.Generator().manual_seed(0))
    out = zd.forward_with(model, h.continuous_forward)(x)  # as the programs call it: through the module's __call__
    assert out.recon.shape == x.shape and "forward" not in vars(model)  # the class's forward is back
    assert not any(hasattr(model, a) for a in ("continuous", "set_continuous"))  # no stage state in the model
