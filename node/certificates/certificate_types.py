"""The certificate types of Yangtze Delta mutual recognition: the one table (``TYPES``) of
each type's codes, who may hold it and its face fields (照面信息), and the metadata a policy
may disclose like a face field (``COMMON_FIELDS``). ``node.certificates.model`` gives these
rules their meaning (its rules 1, 2, 4 and 6) and re-exports every name here.

This module imports only the ground floor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, TypeGuard

from node.identifiers import CODE_TYPE_CREDIT_CODE, CODE_TYPE_ID_NUMBER
from node.vocabulary import CERTIFICATE_TYPES, CertificateType

__all__ = [
    "COMMON_FIELDS",
    "MAX_TEXT_LENGTH",
    "TYPES",
    "FieldKind",
    "FieldSpec",
    "HolderCodeType",
    "TypeSpec",
    "disclosable_fields",
    "field_label",
    "is_certificate_type",
]

HolderCodeType = Literal["111", "001"]
FieldKind = Literal[
    "text", "date", "datetime", "sex", "id_number", "credit_code", "vehicle_classes",
    "plate_number", "vin",
]  # fmt: skip

MAX_TEXT_LENGTH: Final = 100
"""Default bound on a text face field, in characters; addresses and scopes set their own."""


@dataclass(frozen=True)
class FieldSpec:
    """One face field (照面信息) of a certificate type."""

    name: str
    """Stable snake_case name, used in JSON, policies and presentations."""
    label: str
    """The label printed on the certificate."""
    kind: FieldKind = "text"
    required: bool = True
    max_length: int = MAX_TEXT_LENGTH
    """For text: at most this many characters."""


@dataclass(frozen=True)
class TypeSpec:
    """One certificate type: its codes, who may hold it, and its face fields."""

    name: CertificateType
    type_code: str
    """21 characters: the defining ministry's credit code and a three-digit sequence."""
    holder_code_types: tuple[HolderCodeType, ...]
    fields: tuple[FieldSpec, ...]
    holder_bindings: tuple[tuple[str, str | None], ...]
    """(name field, code field) pairs of the face; the holder must be one of them (rule 6)."""
    identity_checks: tuple[tuple[str, str, str], ...] = ()
    """(ID number field, birth date field, sex field) triples that must agree (rule 6)."""
    _by_name: Mapping[str, FieldSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {spec.name: spec for spec in self.fields})

    @property
    def chinese_name(self) -> str:
        return CERTIFICATE_TYPES[self.name]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)

    def field_spec(self, name: str) -> FieldSpec | None:
        return self._by_name.get(name)


# Made-up ministry credit codes in the national form (rule 2): 11 (a government organ),
# division 100000 (national), an organisation number with its GB 11714 check character,
# and the GB 32100 check character.
_MPS: Final = "111000000000130127"  # 公安部: identity cards, driving, vehicles, residence
_SAMR: Final = "1110000000002562X4"  # 国家市场监督管理总局: business licences
_MCA: Final = "111000000000170212"  # 民政部: marriage registration
_NHC: Final = "111000000000321415"  # 国家卫生健康委员会: birth medical certificates

_PERSON: Final[tuple[HolderCodeType, ...]] = (CODE_TYPE_ID_NUMBER,)
_F = FieldSpec

TYPES: Final[Mapping[CertificateType, TypeSpec]] = MappingProxyType(
    {
        "resident_id_card": TypeSpec(
            "resident_id_card",
            _MPS + "001",
            _PERSON,
            (
                _F("name", "姓名"),
                _F("sex", "性别", "sex"),
                _F("ethnicity", "民族", max_length=20),
                _F("birth_date", "出生", "date"),
                _F("address", "住址", max_length=200),
                _F("id_number", "公民身份号码", "id_number"),
            ),
            holder_bindings=(("name", "id_number"),),
            identity_checks=(("id_number", "birth_date", "sex"),),
        ),
        "business_licence": TypeSpec(
            "business_licence",
            _SAMR + "001",
            (CODE_TYPE_CREDIT_CODE,),
            (
                _F("company_name", "名称"),
                _F("credit_code", "统一社会信用代码", "credit_code"),
                _F("company_type", "类型", max_length=50),
                _F("legal_representative", "法定代表人"),
                _F("registered_capital", "注册资本", max_length=50),
                _F("established_on", "成立日期", "date"),
                _F("business_scope", "经营范围", max_length=2000),
                _F("address", "住所", max_length=200),
            ),
            holder_bindings=(("company_name", "credit_code"),),
        ),
        "driving_licence": TypeSpec(
            "driving_licence",
            _MPS + "002",
            _PERSON,
            (
                _F("name", "姓名"),
                _F("sex", "性别", "sex"),
                _F("nationality", "国籍", max_length=50),
                _F("address", "住址", max_length=200),
                _F("birth_date", "出生日期", "date"),
                _F("first_issued_on", "初次领证日期", "date"),
                _F("vehicle_classes", "准驾车型", "vehicle_classes"),
                # In China the licence number (证号) is the holder's ID number.
                _F("licence_number", "证号", "id_number"),
            ),
            holder_bindings=(("name", "licence_number"),),
            identity_checks=(("licence_number", "birth_date", "sex"),),
        ),
        "vehicle_licence": TypeSpec(
            "vehicle_licence",
            _MPS + "003",
            (CODE_TYPE_ID_NUMBER, CODE_TYPE_CREDIT_CODE),
            (
                _F("plate_number", "号牌号码", "plate_number"),
                _F("vehicle_type", "车辆类型", max_length=50),
                _F("owner", "所有人"),
                _F("use_character", "使用性质", max_length=20),
                _F("brand_model", "品牌型号", max_length=50),
                _F("vin", "车辆识别代号", "vin"),
                _F("engine_number", "发动机号码", max_length=30),
                _F("registered_on", "注册日期", "date"),
            ),
            # The face names the owner but prints no ID number or credit code.
            holder_bindings=(("owner", None),),
        ),
        "marriage_certificate": TypeSpec(
            "marriage_certificate",
            _MCA + "001",
            _PERSON,
            (
                _F("certificate_number", "结婚证字号", max_length=40),
                _F("registered_on", "登记日期", "date"),
                _F("husband_name", "男方姓名"),
                _F("husband_id_number", "男方身份证件号", "id_number"),
                _F("wife_name", "女方姓名"),
                _F("wife_id_number", "女方身份证件号", "id_number"),
            ),
            holder_bindings=(
                ("husband_name", "husband_id_number"),
                ("wife_name", "wife_id_number"),
            ),
        ),
        "residence_permit": TypeSpec(
            "residence_permit",
            _MPS + "004",
            _PERSON,
            (
                _F("name", "姓名"),
                _F("sex", "性别", "sex"),
                _F("id_number", "公民身份号码", "id_number"),
                _F("address", "居住地址", max_length=200),
            ),
            holder_bindings=(("name", "id_number"),),
        ),
        "birth_medical_certificate": TypeSpec(
            "birth_medical_certificate",
            _NHC + "001",
            # A newborn has no ID number yet; the certificate is held by a parent, under the
            # parent's number, until the child's household registration.
            _PERSON,
            (
                _F("certificate_number", "出生医学证明编号", max_length=20),
                _F("child_name", "新生儿姓名"),
                _F("sex", "性别", "sex"),
                _F("born_at", "出生时间", "datetime"),
                _F("birth_place", "出生地点", max_length=200),
                _F("mother_name", "母亲姓名"),
                _F("mother_id_number", "母亲有效身份证件号码", "id_number"),
                _F("father_name", "父亲姓名", required=False),
                _F("father_id_number", "父亲有效身份证件号码", "id_number", required=False),
            ),
            holder_bindings=(
                ("mother_name", "mother_id_number"),
                ("father_name", "father_id_number"),
            ),
        ),
    }
)
"""Every certificate type, in the catalog's order (rule 1)."""

COMMON_FIELDS: Final[tuple[FieldSpec, ...]] = (
    _F("issuing_authority", "颁发机构"),
    _F("issued_on", "颁发日期", "date"),
    _F("valid_from", "有效期起始日期", "date"),
    _F("valid_until", "有效期截止日期", "date", required=False),
)
"""Metadata a policy may disclose like a face field (rule 5); ``valid_until`` None = 长期."""

_COMMON_NAMES: Final = frozenset(spec.name for spec in COMMON_FIELDS)

if set(TYPES) != set(CERTIFICATE_TYPES):  # pragma: no cover - guards the two tables
    raise RuntimeError(
        "node.certificates.certificate_types.TYPES must list every catalog certificate type"
    )


def is_certificate_type(value: object) -> TypeGuard[CertificateType]:
    return isinstance(value, str) and value in TYPES


def disclosable_fields(certificate_type: CertificateType) -> tuple[str, ...]:
    """The names a policy may disclose for a type: its face fields, then ``COMMON_FIELDS``.

    The order is stable (presentations refer to fields by position in it).
    """
    return TYPES[certificate_type].field_names + tuple(spec.name for spec in COMMON_FIELDS)


def field_label(certificate_type: CertificateType, name: str) -> str:
    """The Chinese label of a disclosable field (``KeyError`` if the type has no such field)."""
    spec = TYPES[certificate_type].field_spec(name)
    if spec is not None:
        return spec.label
    for common in COMMON_FIELDS:
        if common.name == name:
            return common.label
    raise KeyError(name)
