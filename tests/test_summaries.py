"""The demo's and load's summaries add up: every case has one outcome column, the burst's
progress is two parts of one whole, matters are named beside their codes."""

from __future__ import annotations

import re
from typing import Any

from node.cli.catalog_cmd import certificates_cell
from node.cli.demo import burst_progress
from node.cli.load_cmd import render
from node.cli.output import purpose_label
from node.mesh.load import LoadCase, LoadReport, PairFigures, read_view
from node.mesh.scenario import PAIR_HEADERS, DemoCase, outcome, pair_rows

PATHS = {
    "completed": ["deliver", "accept", "complete", "evaluate"],
    "denied": ["deliver", "accept", "deny", "evaluate"],
    "rejected": ["deliver", "reject"],
    "withdrawn": ["deliver", "accept", "withdraw"],
    "open": ["deliver", "accept", "request_supplement"],
}
STATUS = {"completed": "evaluated", "denied": "evaluated", "rejected": "rejected",
          "withdrawn": "withdrawn", "open": "supplement_requested"}  # fmt: skip


def load_case(kind: str) -> LoadCase:
    case = LoadCase("shanghai", "anhui", {}, key=kind, case_id=kind, outcome="created")
    history = [{"action": a, "at_ns": (i + 1) * 10**9} for i, a in enumerate(PATHS[kind])]
    read_view(case, {"status": STATUS[kind], "history": history})
    return case


def test_load_report_has_a_column_per_outcome_that_adds_up() -> None:
    """A completed and a denied case (both evaluated since), a rejected, a withdrawn and an
    open one: one in each column, and the columns add up to the cases."""
    cases = [load_case(kind) for kind in PATHS]
    figures = PairFigures.of("shanghai → anhui", cases)
    assert (figures.completed, figures.denied, figures.rejected, figures.withdrawn) == (1,) * 4
    assert (figures.cases, figures.concluded, figures.open) == (5, 4, 1)
    report = LoadReport(5, 5, 0, {}, 0, 1.0, [figures], PairFigures.of("total", cases))
    shown = render(report)
    header = next(line for line in shown.splitlines() if line.startswith("accepting"))
    assert re.split(r"\s{2,}", header) == [
        "accepting → handling", "cases", "handed off", "concluded", "completed", "denied",
        "rejected", "withdrawn", "open",
    ]  # fmt: skip
    total = next(line for line in shown.splitlines() if line.startswith("total"))
    assert total.split() == ["total", "5", "5", "4", "1", "1", "1", "1", "1"]
    assert "cases = completed + denied + rejected + withdrawn + open" in shown


def demo_case(kind: str) -> DemoCase:
    return DemoCase("jiangsu", "zhejiang", {}, {}, status=STATUS[kind], path=PATHS[kind],
                    seconds=2.0)  # fmt: skip


def test_demo_pair_rows_add_up() -> None:
    """The demo's pair table has completed, denied, rejected and withdrawn columns whose sum
    is the cases of the pair when all concluded."""
    cases = [demo_case(k) for k in ("completed", "denied", "denied", "rejected", "withdrawn")]
    assert [outcome(c) for c in cases] == ["completed", "denied", "denied", "rejected",
                                           "withdrawn"]  # fmt: skip
    [row] = pair_rows(cases)
    shown = dict(zip(PAIR_HEADERS, row, strict=True))
    assert shown["cases"] == 5
    assert [shown[o] for o in ("completed", "denied", "rejected", "withdrawn")] == [1, 2, 1, 1]
    assert outcome(demo_case("open")) == "open"


def test_burst_progress_is_two_parts_of_the_whole() -> None:
    """Receipted and on their way add up to what was sent."""
    line = burst_progress(887, 2400)
    assert line == "probes receipted 887 of 2400, 1513 on their way"
    numbers = [int(n) for n in re.findall(r"\d+", line)]
    assert numbers[0] + numbers[2] == numbers[1]


def test_matter_codes_are_named() -> None:
    """A matter code is shown with the matter's name; a scene stays as it is."""
    catalog: list[dict[str, Any]] = [
        {"code": "1134000000543144032000175012000", "name": "异地缴纳交通违法罚款"}
    ]
    assert (
        purpose_label("1134000000543144032000175012000", catalog)
        == "异地缴纳交通违法罚款(1134000000543144032000175012000)"
    )
    assert purpose_label("hotel_check_in", catalog) == "hotel_check_in"


def test_a_certificate_type_asked_twice_is_told_apart_by_material_name() -> None:
    """The newborn registration asks for two ID cards: each is shown with its material name,
    the certificates asked once by type alone; uploads are not shown."""
    materials = [
        {
            "name": "出生医学证明",
            "kind": "certificate",
            "certificate_type": "birth_medical_certificate",
        },
        {"name": "父亲居民身份证", "kind": "certificate", "certificate_type": "resident_id_card"},
        {"name": "母亲居民身份证", "kind": "certificate", "certificate_type": "resident_id_card"},
        {"name": "户口簿", "kind": "upload"},
    ]
    assert certificates_cell(materials) == (
        "birth_medical_certificate, resident_id_card (父亲居民身份证), "
        "resident_id_card (母亲居民身份证)"
    )
