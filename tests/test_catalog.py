"""The cross-province matter catalog: shipped data, validation, the §9 shape and the merge."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
import re
from collections.abc import Callable
from typing import Any

import pytest

from node.cases.catalog import (
    CERTIFICATE_TYPES,
    MODES,
    PROVINCES,
    Catalog,
    CatalogError,
    Matter,
    load_catalog,
    matter_to_json,
    merge,
    parse_catalog,
    to_json,
    validate_matter_code,
)
from node.identifiers import make_credit_code

# The ten high-frequency Yangtze Delta matters, by the 12-digit basic code that the packaged
# catalogs share across provinces, with a pattern that every province's name for it matches.
NAMED_MATTERS = {
    "000172001000": "户籍类证明",  # household-registration certificate
    "000172015000": "犯罪记录证明",  # no-criminal-record certificate
    "000174006000": "出入境记录查询",  # entry-exit record query
    "000175012000": "交通违法罚款",  # cross-province traffic-fine payment
    "001022008000": "企业(内档|登记档案)查询",  # enterprise archive query
    "000418003000": "学历学位公证",  # degree / diploma notarisation
    "001145002000": "住房公积金异地转移接续",  # housing-provident-fund transfer
    "000215004000": "失业登记",  # unemployment registration
    "000172004000": "新生儿入户",  # newborn household registration
    "000172021000": "首次申领居民身份证",  # first resident-ID application
}
NEWBORN, ENTERPRISE_ARCHIVE = "000172004000", "001022008000"

SHANGHAI_BODY = make_credit_code(random.Random(1), division="310000")
JIANGSU_BODY = make_credit_code(random.Random(2), division="320100")


def code(body: str = SHANGHAI_BODY, basic: str = "000172001000") -> str:
    return body + "2" + basic


def matter_json(**changes: Any) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "code": code(),
        "name": "开具户籍类证明",
        "name_en": "Household registration certificate",
        "handler": "shanghai",
        "department": "上海市公安局",
        "modes": ["全程网办", "异地代收代办"],
        "materials": [
            {"name": "户籍类证明申请表", "kind": "upload"},
            {
                "name": "申请人居民身份证",
                "kind": "certificate",
                "certificate_type": "resident_id_card",
            },
        ],
        "promised_days": 3,
    }
    shape.update(changes)
    return shape


def catalog_json(*matters: dict[str, Any], province: str = "shanghai") -> dict[str, Any]:
    return {"province": province, "version": 1, "matters": list(matters or [matter_json()])}


@pytest.fixture(scope="module")
def shipped() -> list[Catalog]:
    return [load_catalog(province) for province in PROVINCES]


# --- the shipped catalogs ------------------------------------------------------------------


@pytest.mark.parametrize("province", PROVINCES)
def test_shipped_catalog_loads_and_validates(province: str) -> None:
    """Each province's packaged catalog loads, validates and lists at least eight matters."""
    catalog = load_catalog(province)
    assert catalog.province == province
    assert catalog.version >= 1
    assert len(catalog.matters) >= 8
    assert all(matter.handler == province for matter in catalog.matters)


def test_each_named_matter_is_handled_somewhere(shipped: list[Catalog]) -> None:
    """Every one of the ten high-frequency matters is announced by at least one province."""
    handled = {matter.basic_code for catalog in shipped for matter in catalog.matters}
    assert set(NAMED_MATTERS) <= handled


def test_a_basic_code_means_the_same_matter_in_every_province(shipped: list[Catalog]) -> None:
    """A shared basic code names the same matter in every province's catalog."""
    for catalog in shipped:
        for matter in catalog.matters:
            if matter.basic_code in NAMED_MATTERS:
                assert re.search(NAMED_MATTERS[matter.basic_code], matter.name), matter.code


def test_each_province_handles_most_named_matters(shipped: list[Catalog]) -> None:
    """Each province handles at least eight of the ten named matters for its own people."""
    for catalog in shipped:
        mine = {matter.basic_code for matter in catalog.matters} & set(NAMED_MATTERS)
        assert len(mine) >= 8, catalog.province


def test_newborn_registration_fetches_the_birth_certificate_and_parents_ids(
    shipped: list[Catalog],
) -> None:
    """Newborn registration needs the birth medical certificate and both parents' ID cards."""
    for catalog in shipped:
        for matter in catalog.matters:
            if matter.basic_code == NEWBORN:
                types = [material.certificate_type for material in matter.materials]
                assert "birth_medical_certificate" in types
                assert types.count("resident_id_card") >= 2


def test_enterprise_archive_query_fetches_the_business_licence(shipped: list[Catalog]) -> None:
    """An enterprise archive query needs the company's business licence, fetched not uploaded."""
    for catalog in shipped:
        for matter in catalog.matters:
            if matter.basic_code == ENTERPRISE_ARCHIVE:
                assert any(
                    material.kind == "certificate"
                    and material.certificate_type == "business_licence"
                    for material in matter.materials
                )


def test_shipped_promised_days_are_realistic(shipped: list[Catalog]) -> None:
    """Shipped time limits are between 1 and 20 working days."""
    assert all(1 <= m.promised_days <= 20 for c in shipped for m in c.matters)


def test_catalog_looks_a_matter_up_by_code(shipped: list[Catalog]) -> None:
    """A catalog finds its own matters by code and answers None for any other code."""
    shanghai, jiangsu = shipped[0], shipped[1]
    first = shanghai.matters[0]
    assert shanghai.get(first.code) is first
    assert shanghai.get(jiangsu.matters[0].code) is None


def test_load_refuses_a_province_outside_the_federation() -> None:
    """Loading a catalog for a province that is not a member names the province field."""
    with pytest.raises(CatalogError) as caught:
        load_catalog("beijing")
    assert caught.value.field == "province"
    assert "'beijing' is not a federation province" in str(caught.value)


def test_constants_name_the_three_modes_and_seven_certificate_types() -> None:
    """MODES are the national three; CERTIFICATE_TYPES the seven types with Chinese names."""
    assert MODES == ("全程网办", "异地代收代办", "多地联办")
    assert CERTIFICATE_TYPES == {
        "resident_id_card": "居民身份证",
        "business_licence": "营业执照",
        "driving_licence": "机动车驾驶证",
        "vehicle_licence": "机动车行驶证",
        "marriage_certificate": "结婚证",
        "residence_permit": "居住证",
        "birth_medical_certificate": "出生医学证明",
    }


# --- the §9 JSON shape ---------------------------------------------------------------------


@pytest.mark.parametrize("province", PROVINCES)
def test_to_json_round_trips_through_parse_catalog(province: str) -> None:
    """A catalog written by to_json, through JSON text, parses back to an equal catalog."""
    catalog = load_catalog(province)
    text = json.dumps(to_json(catalog), ensure_ascii=False)
    assert parse_catalog(json.loads(text), province) == catalog


def test_matter_json_has_the_design_shape() -> None:
    """A matter serialises to the §9 fields; only certificate materials carry a type."""
    matter = parse_catalog(catalog_json(), "shanghai").matters[0]
    shape = matter_to_json(matter)
    assert list(shape) == [
        "code",
        "name",
        "name_en",
        "handler",
        "department",
        "modes",
        "materials",
        "promised_days",
    ]
    assert shape["materials"] == [
        {"name": "户籍类证明申请表", "kind": "upload"},
        {"name": "申请人居民身份证", "kind": "certificate", "certificate_type": "resident_id_card"},
    ]
    assert shape["modes"] == ["全程网办", "异地代收代办"]
    assert shape["handler"] == "shanghai"
    assert shape["promised_days"] == 3


# --- bad input -----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], object]


def _set(path: list[str | int], value: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


def _delete(path: list[str | int]) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


def _second_matter(**changes: Any) -> Mutation:
    def mutate(document: dict[str, Any]) -> None:
        document["matters"].append(matter_json(**changes))

    return mutate


M0: list[str | int] = ["matters", 0]
BAD_CHECK = SHANGHAI_BODY[:17] + ("0" if SHANGHAI_BODY[17] != "0" else "1")

BAD_INPUTS: list[tuple[str, Mutation, str, str]] = [
    ("province mismatch", _set(["province"], "jiangsu"), "province", "not 'shanghai'"),
    ("version zero", _set(["version"], 0), "version", "out of range"),
    ("version as text", _set(["version"], "1"), "version", "whole number"),
    ("matters not a list", _set(["matters"], {}), "matters", "JSON array"),
    ("unknown top field", _set(["signature"], "x"), "catalog", "unknown field 'signature'"),
    ("missing version", _delete(["version"]), "version", "missing"),
    ("matter not an object", _set(M0, "x"), "matters[0]", "JSON object"),
    (
        "unknown matter field",
        _set([*M0, "promised_day"], 3),
        "matters[0]",
        "unknown field 'promised_day'",
    ),
    ("missing name", _delete([*M0, "name"]), "matters[0].name", "missing"),
    ("blank name", _set([*M0, "name"], "  "), "matters[0].name", "empty"),
    ("padded name_en", _set([*M0, "name_en"], " x"), "matters[0].name_en", "white space"),
    ("long department", _set([*M0, "department"], "局" * 201), "matters[0].department", "201"),
    ("unknown mode", _set([*M0, "modes", 1], "上门办"), "matters[0].modes[1]", "not a handling"),
    (
        "repeated mode",
        _set([*M0, "modes"], ["全程网办", "全程网办"]),
        "matters[0].modes[1]",
        "listed twice",
    ),
    ("no modes", _set([*M0, "modes"], []), "matters[0].modes", "must not be empty"),
    ("zero days", _set([*M0, "promised_days"], 0), "matters[0].promised_days", "out of range"),
    ("negative days", _set([*M0, "promised_days"], -3), "matters[0].promised_days", "1 to 60"),
    ("61 days", _set([*M0, "promised_days"], 61), "matters[0].promised_days", "out of range"),
    ("float days", _set([*M0, "promised_days"], 5.0), "matters[0].promised_days", "whole"),
    ("boolean days", _set([*M0, "promised_days"], True), "matters[0].promised_days", "boolean"),
    ("handler elsewhere", _set([*M0, "handler"], "jiangsu"), "matters[0].handler", "'jiangsu'"),
    ("no materials", _set([*M0, "materials"], []), "matters[0].materials", "must not be empty"),
    (
        "unknown certificate type",
        _set([*M0, "materials", 1, "certificate_type"], "passport"),
        "matters[0].materials[1].certificate_type",
        "'passport' is not a certificate type",
    ),
    (
        "certificate without type",
        _delete([*M0, "materials", 1, "certificate_type"]),
        "matters[0].materials[1].certificate_type",
        "must name its certificate type",
    ),
    (
        "upload with a type",
        _set([*M0, "materials", 0, "certificate_type"], "resident_id_card"),
        "matters[0].materials[0].certificate_type",
        "an upload has no certificate type",
    ),
    (
        "unknown material kind",
        _set([*M0, "materials", 0, "kind"], "paper"),
        "matters[0].materials[0].kind",
        "'paper' is not a material kind",
    ),
    (
        "repeated material name",
        _set([*M0, "materials", 1, "name"], "户籍类证明申请表"),
        "matters[0].materials[1].name",
        "already a material",
    ),
    ("short code", _set([*M0, "code"], code()[:-1]), "matters[0].code", "31 characters"),
    ("code not text", _set([*M0, "code"], 12), "matters[0].code", "string"),
    ("lower-case code", _set([*M0, "code"], code().lower()), "matters[0].code", "upper case"),
    (
        "wrong check character",
        _set([*M0, "code"], code(BAD_CHECK)),
        "matters[0].code",
        "wrong check character",
    ),
    (
        "letter in the 13 digits",
        _set([*M0, "code"], code()[:-1] + "A"),
        "matters[0].code",
        "character 31",
    ),
    (
        "body in another province",
        _set([*M0, "code"], code(JIANGSU_BODY)),
        "matters[0].code",
        "division 320100 is in jiangsu",
    ),
    (
        "body outside the federation",
        _set([*M0, "code"], code(make_credit_code(random.Random(3), division="110000"))),
        "matters[0].code",
        "outside the federation",
    ),
    (
        "duplicate code",
        _second_matter(name="户籍类证明(重复)"),
        "matters[1].code",
        "already the code of matters[0]",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "field", "fragment"),
    [
        pytest.param(mutate, field, fragment, id=name)
        for name, mutate, field, fragment in BAD_INPUTS
    ],
)
def test_bad_input_is_refused_naming_the_field(mutate: Mutation, field: str, fragment: str) -> None:
    """Each kind of bad catalog input is a CatalogError whose message starts with the field."""
    document = catalog_json()
    parse_catalog(copy.deepcopy(document), "shanghai")  # the unmutated document is valid
    mutate(document)
    with pytest.raises(CatalogError) as caught:
        parse_catalog(document, "shanghai")
    error = caught.value
    assert error.code == "invalid_catalog"
    assert error.field == field
    assert str(error).startswith(f"{field}: ")
    assert fragment in str(error)


def test_a_document_that_is_not_an_object_is_refused() -> None:
    """A catalog that is not a JSON object is refused at its root."""
    with pytest.raises(CatalogError, match=r"^catalog: expected a JSON object, got an array$"):
        parse_catalog([], "shanghai")


def test_validate_matter_code_accepts_a_well_formed_code() -> None:
    """A credit code with a correct check character and 13 digits is a matter code."""
    assert validate_matter_code(code()) == code()


# --- the federated catalog -----------------------------------------------------------------


def test_merge_sorts_by_handler_then_code(shipped: list[Catalog]) -> None:
    """The federated catalog holds every province's matters, ordered by handler then code."""
    merged = merge(reversed(shipped))
    assert len(merged) == sum(len(catalog.matters) for catalog in shipped)
    assert merged == sorted(merged, key=lambda matter: (matter.handler, matter.code))
    assert merged[0].handler == "anhui"
    assert {m.handler for m in merged} == set(PROVINCES)


def test_merge_refuses_a_code_announced_by_two_provinces() -> None:
    """A code announced by two provinces is refused, naming the second announcement."""
    shanghai = parse_catalog(catalog_json(), "shanghai")
    stolen: Matter = dataclasses.replace(shanghai.matters[0], handler="jiangsu")
    jiangsu = Catalog("jiangsu", 4, (stolen,))
    with pytest.raises(CatalogError) as caught:
        merge([shanghai, jiangsu])
    assert caught.value.code == "duplicate_matter"
    assert caught.value.field == "jiangsu.matters[0].code"
    assert "also announced by shanghai" in str(caught.value)


def test_merge_refuses_two_catalogs_of_one_province() -> None:
    """Two catalogs from one province (say two versions) are refused rather than combined."""
    first = parse_catalog(catalog_json(), "shanghai")
    second = dataclasses.replace(first, version=2, matters=())
    with pytest.raises(CatalogError, match="shanghai has two catalogs"):
        merge([first, second])


def test_merge_of_nothing_is_empty() -> None:
    """Merging no catalogs gives an empty federated catalog."""
    assert merge([]) == []
