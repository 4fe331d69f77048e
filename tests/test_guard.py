"""The identifiability guard's disk cache: keyed by code and version, validated, written whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import eilab
from eilab import guard


@pytest.fixture(autouse=True)
def small_cache(tmp_path, monkeypatch) -> Path:
    """A private cache and a 6² proxy (the verdicts below are the same at 12², only slower)."""
    monkeypatch.setenv("EILAB_CACHE", str(tmp_path))
    monkeypatch.setattr(guard, "PROXY_SIZE", 6)
    return tmp_path / "theory"


def ei_config(physics: dict, group: dict, channels: int):
    return OmegaConf.create(
        {
            "check_identifiability": True,
            "channels": channels,
            "physics": {"img_size": 6, **physics},
            "strategy": {"group": group},
        }
    )


MRI_SHIFTS = ei_config({"_target_": "eilab.physics.MRI"}, {"_target_": "eilab.groups.Shift"}, 2)
INPAINTING_SHIFTS = ei_config(
    {"_target_": "eilab.physics.Inpainting"}, {"_target_": "eilab.groups.Shift"}, 1
)


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.json"))


def claim_full_rank(value: object) -> None:
    """Edit, in place, every result in a cache entry to say the group makes M full rank."""
    if isinstance(value, dict):
        if "rank_stacked" in value:
            value.update(rank_stacked=value["n"], sigma_ratio=0.5, range_leakage=0.4)
        for item in value.values():
            claim_full_rank(item)


def test_tampered_entry_cannot_let_mri_with_shifts_pass(small_cache):
    with pytest.raises(guard.UselessGroupError, match="Corollary 1"):
        guard.check_group_helps(MRI_SHIFTS)
    [entry] = entries(small_cache)
    content = json.loads(entry.read_text())
    claim_full_rank(content)
    entry.write_text(json.dumps(content))
    with pytest.raises(guard.UselessGroupError, match="Corollary 1"):
        guard.check_group_helps(MRI_SHIFTS)
    assert json.loads(entry.read_text()) != content  # the tampered entry was rewritten


def test_truncated_entry_is_a_miss_and_is_rewritten_whole(small_cache):
    first = guard.check_group_helps(INPAINTING_SHIFTS)
    [entry] = entries(small_cache)
    text = entry.read_text()
    entry.write_text(text[: len(text) // 2])
    assert guard.check_group_helps(INPAINTING_SHIFTS) == first
    assert entry.read_text() == text
    assert [p.name for p in small_cache.iterdir()] == [entry.name]  # no temporary file left


def test_entry_for_another_operator_size_is_a_miss(small_cache):
    first = guard.check_group_helps(INPAINTING_SHIFTS)
    [entry] = entries(small_cache)
    content = json.loads(entry.read_text())
    for value in (content, *[v for v in content.values() if isinstance(v, dict)]):
        if "n" in value:
            value["n"] = 7  # a proxy of another size: not these 36 pixels
    entry.write_text(json.dumps(content))
    assert guard.check_group_helps(INPAINTING_SHIFTS) == first
    assert json.loads(entry.read_text()) != content


@pytest.mark.parametrize("change", ["version", "code"])
def test_cache_key_holds_eilab_version_and_operator_code(small_cache, monkeypatch, change):
    guard.check_group_helps(INPAINTING_SHIFTS)
    if change == "version":
        monkeypatch.setattr(eilab, "__version__", "0.0.0-other")
    else:
        monkeypatch.setattr(guard, "code_hash", lambda: "another operator code", raising=False)
    guard.check_group_helps(INPAINTING_SHIFTS)
    assert len(entries(small_cache)) == 2


def test_code_hash_follows_the_operator_group_and_theory_sources(tmp_path, monkeypatch):
    root, copy = Path(eilab.__file__).parent, tmp_path / "eilab"
    for name in ("physics", "groups"):
        shutil.copytree(root / name, copy / name)
    for name in ("theory.py", "train.py"):
        shutil.copy(root / name, copy / name)
    monkeypatch.setattr(eilab, "__file__", str(copy / "__init__.py"))
    hashes = [guard.code_hash.__wrapped__()]
    for edited in ("physics/mri.py", "groups/shift.py", "theory.py", "train.py"):
        with open(copy / edited, "a") as file:
            file.write("\n# edited\n")
        hashes.append(guard.code_hash.__wrapped__())
    assert len(set(hashes[:4])) == 4  # each operator, group or theory edit is a new key
    assert hashes[4] == hashes[3]  # training code is not part of the numbers


@pytest.mark.parametrize("blocked", ["cache", "cache/theory"])
def test_a_cache_that_cannot_be_written_is_skipped_with_a_warning(
    blocked, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("EILAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / blocked).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / blocked).write_text("not a folder\n")
    assert guard.check_group_helps(INPAINTING_SHIFTS) is not None
    assert "cannot write the identifiability cache" in caplog.text
    assert (tmp_path / blocked).read_text() == "not a folder\n"
