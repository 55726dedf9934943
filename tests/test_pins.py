"""Official weights are pinned to a hub commit, or listed by name in registry.NOT_YET_PINNED."""

import re

from zoo import registry

SHA1 = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")


def _official():
    return {name: v for name, (_, v) in registry.catalogue().items() if v.official and v.pretrained is not None}


def test_every_official_entry_is_pinned_or_listed():
    official = _official()
    unpinned = {n for n, v in official.items() if v.pretrained.revision is None}
    listed = set(registry.NOT_YET_PINNED)
    assert len(listed) == len(registry.NOT_YET_PINNED), "NOT_YET_PINNED names an entry twice"
    assert not listed - set(official), f"NOT_YET_PINNED names no official entry: {sorted(listed - set(official))}"
    assert unpinned == listed, (
        f"unpinned but not listed: {sorted(unpinned - listed)}; listed but pinned: {sorted(listed - unpinned)}"
    )


def test_pins_are_full_hashes():
    for name, v in _official().items():
        pre = v.pretrained
        if pre.revision is not None:
            assert SHA1.fullmatch(pre.revision), f"{name}: revision {pre.revision!r} is not a 40-hex commit"
        if pre.sha256 is not None:
            assert SHA256.fullmatch(pre.sha256), f"{name}: sha256 {pre.sha256!r} is not 64 hex digits"
            assert pre.revision is not None, f"{name}: a sha256 without a revision"


def test_some_entries_are_pinned():
    assert sum(v.pretrained.revision is not None for v in _official().values()) >= 1
