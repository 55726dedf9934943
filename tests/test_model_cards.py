"""MODEL_CARDS.md and the registry agree: every catalogue name has its section and back."""

import re
from pathlib import Path

from zoo import cards, registry

REPO = Path(__file__).resolve().parents[1]


def test_model_cards_file_is_up_to_date():
    text = (REPO / "MODEL_CARDS.md").read_text()
    assert text == cards.render_model_cards(), "MODEL_CARDS.md is out of date: run `zoo cards`"


def test_every_name_has_a_section_and_back():
    text = (REPO / "MODEL_CARDS.md").read_text()
    sections = set(re.findall(r"^## (\S+)$", text, flags=re.M))
    assert sections == set(registry.list_models())
