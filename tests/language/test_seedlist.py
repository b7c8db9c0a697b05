"""The seed list: who may receive test sends, every address checked like at any door, problems located."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.seedlist import read_seed_list


def test_a_good_seed_list_gives_every_address(tmp_path: Path) -> None:
    path = tmp_path / "seeds.yaml"
    path.write_text(
        "seeds:\n"
        "  - {name: ana, email: Ana@Shop.Example, locale: nl, attributes: {first_name: Ana}}\n"
        "  - {name: ben, phone: '+31612345678', push_token: tok-1}\n",
        encoding="utf-8",
    )
    seeds = read_seed_list(path)
    assert [s.name for s in seeds.seeds] == ["ana", "ben"]
    assert seeds.addresses() == {"Ana@shop.example", "+31612345678", "tok-1"}
    assert seeds.seeds[0].attributes == {"first_name": "Ana"} and seeds.seeds[0].locale == "nl"


def test_every_bad_entry_is_reported_at_once_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "seeds.yaml"
    path.write_text(
        "seeds:\n"
        "  - name: ana\n"
        "    email: not an address\n"
        "  - name: ben\n"
        "    phone: '+31 6 1234 5678'\n"
        "  - name: cy\n"
        "    phone: '0612345678'\n"
        "  - name: dee\n"
        "  - name: ana\n"
        "    email: ana2@shop.example\n"
        "    mobile: '+31612345678'\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationFailed) as caught:
        read_seed_list(path)
    shown = [str(problem).replace(str(path), "seeds.yaml") for problem in caught.value.problems]
    assert shown[0].startswith("seeds.yaml:3:12: email is not a valid e-mail address")
    assert shown[1] == "seeds.yaml:5:12: phone is not written in E.164 (hint: write it as +31612345678)"
    assert shown[2].startswith("seeds.yaml:7:12: phone is not a valid number in international form")
    assert shown[3] == "seeds.yaml:8:5: seed 'dee' has no address (hint: give an email, phone or push_token)"
    assert "seeds.yaml:11:5: unknown key 'mobile'" in shown[4]
    assert shown[5].startswith("seeds.yaml:9:11: seed 'ana' is listed twice")
    assert len(shown) == 6


def test_a_file_without_seeds_says_what_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "seeds.yaml"
    path.write_text("people: []\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="a seed list needs 'seeds:'"):
        read_seed_list(path)
