"""Voucher pools in the journey language: generated codes, code files, and the checks of a step's pool."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.loader import load_journeys
from orchestrator.language.vouchers import ALPHABET, VoucherPool, generated_code, is_well_formed, read_codes
from tests.runtime.harness import write_templates

SECRET = b"k" * 32
GENERATED = VoucherPool(kind="generated", prefix="BDAY-", length=10)


def test_a_generated_code_is_stable_per_key_and_different_across_keys() -> None:
    """The same run and step always get the same code (retries, other workers); 20,000 runs get
    20,000 different codes of the declared shape, each passing its own check."""
    first = generated_code(SECRET, "birthday", "run-1:gift", GENERATED)
    assert first == generated_code(SECRET, "birthday", "run-1:gift", GENERATED)
    assert first != generated_code(b"another-secret" * 3, "birthday", "run-1:gift", GENERATED)
    codes = {generated_code(SECRET, "birthday", f"run-{n}:gift", GENERATED) for n in range(20_000)}
    assert len(codes) == 20_000
    assert all(code.startswith("BDAY-") and len(code) == 15 and is_well_formed(code, GENERATED) for code in codes)
    assert not set("ILOU") & set("".join(codes))


def test_the_check_character_catches_every_single_wrong_character_and_adjacent_swaps() -> None:
    code = generated_code(SECRET, "birthday", "run-1:gift", GENERATED)
    body = code[len("BDAY-") :]
    for position, char in itertools.product(range(len(body)), ALPHABET):
        if char != body[position]:
            typo = "BDAY-" + body[:position] + char + body[position + 1 :]
            assert not is_well_formed(typo, GENERATED), typo
    for position in range(len(body) - 2):  # swaps among the body (the check character itself aside)
        if body[position] != body[position + 1]:
            swapped = body[:position] + body[position + 1] + body[position] + body[position + 2 :]
            assert not is_well_formed("BDAY-" + swapped, GENERATED), swapped
    assert not is_well_formed("GIFT-" + body, GENERATED) and not is_well_formed(code + "2", GENERATED)


def test_a_code_file_is_read_one_code_a_line_or_as_a_csv_with_a_code_column(tmp_path: Path) -> None:
    plain = tmp_path / "codes.txt"
    plain.write_text("AB-100\nAB-101\n", encoding="utf-8")
    assert read_codes(plain) == ["AB-100", "AB-101"]
    csv = tmp_path / "codes.csv"
    csv.write_text("code,valid_until\nAB-200,2027-01-01\nAB-201,2027-01-01\n", encoding="utf-8")
    assert read_codes(csv) == ["AB-200", "AB-201"]


def test_a_bad_code_file_reports_every_problem_with_its_line_and_loads_nothing(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("code\nAB-1000\n\nAB-1001\nAB-1000\nno spaces allowed\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        read_codes(path)
    shown = [str(problem) for problem in caught.value.problems]
    assert shown == [
        f"{path}:3:1: blank line (hint: remove it: every line holds one code)",
        f"{path}:5:1: code 'AB-1000' repeats line 2 (hint: each code once)",
        f"{path}:6:1: 'no spaces allowed' is not a code (hint: use 3-64 letters, digits, '-' or '_')",
    ]
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="holds no codes"):
        read_codes(empty)


JOURNEY = """\
id: gift
name: Gift
trigger:
  event: customer.signed_up
category: transactional
steps:
  - id: give
    send: email
    template: {template}
    voucher: {pool}
"""


def write_journey(tmp_path: Path, template: str, pool: str) -> tuple[Path, Path]:
    journeys, templates = tmp_path / "journeys", tmp_path / "templates"
    journeys.mkdir()
    (journeys / "gift.yaml").write_text(JOURNEY.format(template=template, pool=pool), encoding="utf-8")
    write_templates(templates, ["hello"])
    (templates / "email").mkdir(exist_ok=True)
    for part in ("subject", "html", "txt"):
        (templates / "email" / f"gift.{part}.j2").write_text("Your code: {{ voucher.code }}", encoding="utf-8")
    return journeys, templates


def test_a_step_naming_an_undeclared_pool_is_refused_with_its_place_and_a_suggestion(tmp_path: Path) -> None:
    journeys, templates = write_journey(tmp_path, "gift", "birthdy")
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(journeys, templates, vouchers={"birthday"})
    (problem,) = caught.value.problems
    assert (Path(problem.path).name, problem.line, problem.column) == ("gift.yaml", 10, 14)
    assert "unknown voucher pool 'birthdy'" in problem.message and "did you mean 'birthday'?" in problem.hint
    assert load_journeys(journeys, templates, vouchers={"birthdy"})["gift"].steps[0].voucher == "birthdy"


def test_only_a_step_with_a_pool_may_show_a_voucher_code(tmp_path: Path) -> None:
    """A template showing ``voucher.code`` on a step without ``voucher:`` would render an empty
    code; it is refused at validate instead."""
    journeys, templates = write_journey(tmp_path, "gift", "birthday")
    text = (journeys / "gift.yaml").read_text(encoding="utf-8").replace("    voucher: birthday\n", "")
    (journeys / "gift.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(journeys, templates, vouchers={"birthday"})
    assert any("voucher" in problem.message for problem in caught.value.problems)
