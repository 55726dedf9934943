"""zoo/train/families.py: training passes beyond the contract are chosen by family name."""

from zoo import registry
from zoo.train.families import HOOKS, TrainingHooks, families_with, hooks


def test_hooks_name_registered_families_and_default_to_none():
    assert set(HOOKS) <= set(registry.FAMILIES)
    assert hooks("wavtokenizer") == TrainingHooks()  # a family without hooks gets an empty set
    assert families_with("set_continuous") == ["one_d_piece", "vat"]
    assert families_with("proxy_forward") == ["one_d_piece"]


def test_hooks_reach_the_model():
    spec = registry.family("one_d_piece")
    model = spec.tokenizer(spec.variants[0].config)
    h = hooks(model.family)
    assert h.proxy_classes(model) == model.cfg.proxy_codebook_size
    h.set_continuous(model, True)
    assert model.continuous
    h.set_continuous(model, False)
    assert not model.continuous
