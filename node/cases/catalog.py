"""The cross-province matter catalog (跨省通办事项目录): what each province handles, and how.

Each node announces the matters its province handles as 办理地 (DESIGN.md §6); the nodes
merge the announcements into the federated catalog served at ``GET /v1/catalog`` (§9). This
module is the sans-I/O core of that: the packaged catalogs (``catalogs/<province>.json``),
their validation, the §9 JSON shape and the merge. Rules it keeps:

1. A matter code is an implementation code (实施编码) of 31 characters: the implementing
   body's unified social credit code (GB 32100, check character verified) followed by 13
   digits. The body's division (characters 3-8) lies in the handler's province, so a code
   names its handler. The packaged catalogs fill the 13 digits with the exercise level
   (行使层级: 2 provincial, 3 municipal) and a 12-digit basic code (基本编码) that is the
   same for the same matter in every province (``Matter.basic_code``); provinces fill them
   differently in practice, so only "13 digits" is enforced.
2. A catalog holds one province's matters: every matter's handler is that province, and no
   code appears twice. The federated catalog refuses a code announced twice.
3. A matter has one or more handling modes from ``MODES``, without repeats; one or more
   materials with distinct names (a case names the materials it supplies); and a promised
   time limit (承诺时限) of 1 to ``MAX_PROMISED_DAYS`` working days.
4. A material is an upload, or a certificate of one of ``CERTIFICATE_TYPES`` that the
   handler fetches by mutual recognition (免于提交); only a certificate names a type.
5. Every refusal is a ``CatalogError`` whose message starts with the path of the field at
   fault: ``matters[3].materials[1].certificate_type: 'passport' is not a certificate type``.
6. Names, English names and departments are free text (``node.text.clean_text``: no
   control, format or invisible characters), kept in Unicode normal form C.
7. Unknown fields are refused rather than ignored: the catalogs are our own data, and a
   misspelt key (``promised_day``) must fail loudly instead of dropping the field.

The credit codes in the packaged catalogs are made up, not the real bodies' codes: ``11``
(a government organ) or ``12`` (a public institution such as a provident-fund centre or a
notary office), the body's division, an eight-digit organisation number with its GB 11714
check character, and the GB 32100 check character. Names and departments follow each
province's own wording, so the same matter reads differently from province to province.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, Literal, TypeVar

from node import identifiers
from node.identifiers import PROVINCE_PREFIXES, IdentifierError
from node.text import TextError, clean_text

# The one table of each (node.vocabulary); importable from the catalog too.
from node.vocabulary import CERTIFICATE_TYPES as CERTIFICATE_TYPES
from node.vocabulary import PROVINCES as PROVINCES
from node.vocabulary import CertificateType as CertificateType

Mode = Literal["全程网办", "异地代收代办", "多地联办"]
MaterialKind = Literal["upload", "certificate"]
CatalogErrorCode = Literal["invalid_catalog", "duplicate_matter"]

MODES: Final[tuple[Mode, ...]] = ("全程网办", "异地代收代办", "多地联办")
"""全程网办 fully online; 异地代收代办 accepted elsewhere, decided here; 多地联办 joint handling."""

MATERIAL_KINDS: Final[tuple[MaterialKind, ...]] = ("upload", "certificate")

MAX_PROMISED_DAYS: Final = 60
# Bounds on what one catalog may hold, so that a malformed announcement cannot make the
# parser build something huge; real provincial catalogs of cross-province matters list
# tens of matters, each with a handful of materials.
MAX_MATTERS: Final = 1000
MAX_MATERIALS: Final = 50
MAX_TEXT_LENGTH: Final = 200

_CREDIT_CODE_LENGTH: Final = 18
_CATALOG_FIELDS: Final = frozenset({"province", "version", "matters"})
_MATTER_FIELDS: Final = frozenset(
    {
        "code",
        "name",
        "name_en",
        "handler",
        "department",
        "modes",
        "materials",
        "promised_days",
    }
)
_MATERIAL_FIELDS: Final = frozenset({"name", "kind", "certificate_type"})

_T = TypeVar("_T", bound=str)


class CatalogError(ValueError):
    """A catalog, or the merge of several, was refused.

    ``code`` is stable and machine-readable; ``field`` is the path of the field at fault
    (``matters[3].promised_days``); ``detail`` (also ``str(error)``) starts with that path.
    """

    def __init__(self, code: CatalogErrorCode, field: str, sentence: str) -> None:
        detail = f"{field}: {sentence}"
        super().__init__(detail)
        self.code: CatalogErrorCode = code
        self.field = field
        self.detail = detail


@dataclass(frozen=True)
class Material:
    """One material a matter needs: an upload, or a certificate fetched by mutual recognition."""

    name: str
    """What the applicant supplies, as the handler's guide names it (unique in the matter)."""
    kind: MaterialKind
    certificate_type: CertificateType | None = None
    """For a certificate, which type; None for an upload."""


@dataclass(frozen=True)
class Matter:
    """One cross-province matter as its handling province (办理地) announces it."""

    code: str
    """Implementation code (实施编码), 31 characters; see rule 1."""
    name: str
    """The matter's name in the handler's catalog (Chinese)."""
    name_en: str
    handler: str
    """The handling province: shanghai, jiangsu, zhejiang or anhui."""
    modes: tuple[Mode, ...]
    materials: tuple[Material, ...]
    promised_days: int
    """Promised time limit (承诺时限) in working days."""
    department: str
    """The implementing body (实施主体) whose credit code opens ``code``."""

    @property
    def implementing_body_code(self) -> str:
        """The implementing body's unified social credit code (the first 18 characters)."""
        return self.code[:_CREDIT_CODE_LENGTH]

    @property
    def basic_code(self) -> str:
        """The last 12 digits: in the packaged catalogs, the same matter's code everywhere."""
        return self.code[-12:]


@dataclass(frozen=True)
class Catalog:
    """One province's announced matters, with a version that increases on every change.

    Build one with ``parse_catalog`` or ``load_catalog``, which validate it.
    """

    province: str
    version: int
    matters: tuple[Matter, ...]
    _by_code: Mapping[str, Matter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_code", {matter.code: matter for matter in self.matters})

    def get(self, code: str) -> Matter | None:
        """The matter with this code, or None if this province does not announce it."""
        return self._by_code.get(code)


# --- loading and validation -----------------------------------------------------------------


MatterLookup = Callable[[str], Matter | None]
"""A matter of the federated catalog by its code, or None."""


def load_catalog(province: str) -> Catalog:
    """Load and validate the catalog packaged with the node for ``province``."""
    _require_province(province, "province")
    source = resources.files(__package__ or "node.cases") / "catalogs" / f"{province}.json"
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CatalogError(
            "invalid_catalog", "catalog", f"catalogs/{province}.json is not valid JSON: {error}"
        ) from None
    return parse_catalog(data, province)


def parse_catalog(data: object, province: str) -> Catalog:
    """Validate a catalog document (already decoded from JSON) announced by ``province``."""
    _require_province(province, "province")
    document = _object(data, "catalog", _CATALOG_FIELDS, required=_CATALOG_FIELDS)
    if document["province"] != province:
        raise _invalid(
            "province", f"the catalog is for {_show(document['province'])}, not {province!r}"
        )
    version = _integer(document["version"], "version", minimum=1)
    entries = _array(document["matters"], "matters", maximum=MAX_MATTERS)

    matters: list[Matter] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        path = f"matters[{index}]"
        matter = _matter(entry, path, province)
        if matter.code in first_seen:
            raise _invalid(
                f"{path}.code",
                f"{matter.code} is already the code of matters[{first_seen[matter.code]}]",
            )
        first_seen[matter.code] = index
        matters.append(matter)
    return Catalog(province, version, tuple(matters))


def validate_matter_code(value: object, *, field: str = "code") -> str:
    """Check a matter code's shape and check character (rule 1); return it unchanged.

    The rule itself is ``node.identifiers.validate_matter_code``; this names the refusal as a
    catalog's (``CatalogError``, ``invalid_catalog``)."""
    if not isinstance(value, str):
        raise _invalid(field, f"expected a string, got {_type_name(value)}")
    try:
        return identifiers.validate_matter_code(value, field=field)
    except IdentifierError as error:
        raise _invalid(field, error.detail.removeprefix(f"{field}: ")) from None


def matter_code_province(code: str) -> str | None:
    """The province whose body implements a (valid) matter code, or None if outside."""
    return PROVINCE_PREFIXES.get(code[2:4])


def _matter(data: object, path: str, province: str) -> Matter:
    entry = _object(data, path, _MATTER_FIELDS, required=_MATTER_FIELDS)
    code = validate_matter_code(entry["code"], field=f"{path}.code")
    handler = entry["handler"]
    if handler != province:
        raise _invalid(
            f"{path}.handler",
            f"{_show(handler)} is not the province announcing this catalog ({province!r})",
        )
    body_province = matter_code_province(code)
    if body_province != province:
        where = body_province or "outside the federation"
        raise _invalid(
            f"{path}.code",
            f"the implementing body's division {code[2:8]} is in {where}, not in {province}",
        )

    # Unbounded: a list longer than MODES fails on its first repeat or unknown mode.
    modes = _array(entry["modes"], f"{path}.modes", non_empty=True)
    checked_modes: list[Mode] = []
    for index, mode in enumerate(modes):
        mode_path = f"{path}.modes[{index}]"
        checked = _one_of(mode, MODES, mode_path, "a handling mode")
        if checked in checked_modes:
            raise _invalid(mode_path, f"{checked!r} is listed twice")
        checked_modes.append(checked)

    materials = _array(
        entry["materials"], f"{path}.materials", maximum=MAX_MATERIALS, non_empty=True
    )
    checked_materials: list[Material] = []
    for index, material_data in enumerate(materials):
        material_path = f"{path}.materials[{index}]"
        material = _material(material_data, material_path)
        if any(earlier.name == material.name for earlier in checked_materials):
            raise _invalid(
                f"{material_path}.name", f"{material.name!r} is already a material of this matter"
            )
        checked_materials.append(material)

    return Matter(
        code=code,
        name=_text(entry["name"], f"{path}.name"),
        name_en=_text(entry["name_en"], f"{path}.name_en"),
        handler=province,
        modes=tuple(checked_modes),
        materials=tuple(checked_materials),
        promised_days=_integer(
            entry["promised_days"],
            f"{path}.promised_days",
            minimum=1,
            maximum=MAX_PROMISED_DAYS,
            unit=" working days",
        ),
        department=_text(entry["department"], f"{path}.department"),
    )


def _material(data: object, path: str) -> Material:
    entry = _object(data, path, _MATERIAL_FIELDS, required=frozenset({"name", "kind"}))
    name = _text(entry["name"], f"{path}.name")
    kind = _one_of(entry["kind"], MATERIAL_KINDS, f"{path}.kind", "a material kind")
    type_path = f"{path}.certificate_type"
    if kind == "upload":
        if "certificate_type" in entry:
            raise _invalid(type_path, "an upload has no certificate type")
        return Material(name, kind)
    if "certificate_type" not in entry:
        raise _invalid(type_path, "a certificate material must name its certificate type")
    certificate_type = _one_of(
        entry["certificate_type"], tuple(CERTIFICATE_TYPES), type_path, "a certificate type"
    )
    return Material(name, kind, certificate_type)


# --- the §9 JSON shape and the federated catalog --------------------------------------------


def to_json(catalog: Catalog) -> dict[str, Any]:
    """The catalog as a JSON document that ``parse_catalog`` reads back to an equal catalog."""
    return {
        "province": catalog.province,
        "version": catalog.version,
        "matters": [matter_to_json(matter) for matter in catalog.matters],
    }


def matter_to_json(matter: Matter) -> dict[str, Any]:
    """One matter in the ``GET /v1/catalog`` shape of DESIGN.md §9 (plus ``department``)."""
    return {
        "code": matter.code,
        "name": matter.name,
        "name_en": matter.name_en,
        "handler": matter.handler,
        "department": matter.department,
        "modes": list(matter.modes),
        "materials": [_material_to_json(material) for material in matter.materials],
        "promised_days": matter.promised_days,
    }


def _material_to_json(material: Material) -> dict[str, Any]:
    shape: dict[str, Any] = {"name": material.name, "kind": material.kind}
    if material.certificate_type is not None:
        shape["certificate_type"] = material.certificate_type
    return shape


def merge(catalogs: Iterable[Catalog]) -> list[Matter]:
    """The federated catalog: every province's matters, sorted by handler, then code.

    One catalog per province; a code announced twice (by two provinces, or twice by one) is
    refused, because a case names its matter by code alone.
    """
    versions: dict[str, int] = {}
    announced: dict[str, str] = {}
    matters: list[Matter] = []
    for catalog in catalogs:
        if catalog.province in versions:
            raise CatalogError(
                "duplicate_matter",
                "catalogs",
                f"{catalog.province} has two catalogs (versions "
                f"{versions[catalog.province]} and {catalog.version}); merge takes one each",
            )
        versions[catalog.province] = catalog.version
        for index, matter in enumerate(catalog.matters):
            if matter.code in announced:
                raise CatalogError(
                    "duplicate_matter",
                    f"{catalog.province}.matters[{index}].code",
                    f"{matter.code} is also announced by {announced[matter.code]}",
                )
            announced[matter.code] = catalog.province
            matters.append(matter)
    return sorted(matters, key=lambda matter: (matter.handler, matter.code))


# --- field checks ---------------------------------------------------------------------------


def _invalid(field: str, sentence: str) -> CatalogError:
    return CatalogError("invalid_catalog", field, sentence)


def _require_province(province: object, path: str) -> None:
    if province not in PROVINCES:
        raise _invalid(
            path, f"{_show(province)} is not a federation province ({', '.join(PROVINCES)})"
        )


def _object(
    data: object, path: str, allowed: frozenset[str], *, required: frozenset[str]
) -> Mapping[str, object]:
    if not isinstance(data, dict):
        raise _invalid(path, f"expected a JSON object, got {_type_name(data)}")
    for key in data:
        if key not in allowed:
            raise _invalid(path, f"unknown field {_show(key)}")
    for key in sorted(required):
        if key not in data:
            raise _invalid(f"{path}.{key}" if path != "catalog" else key, "missing")
    return data


def _array(
    data: object, path: str, *, maximum: int | None = None, non_empty: bool = False
) -> Sequence[object]:
    if not isinstance(data, list):
        raise _invalid(path, f"expected a JSON array, got {_type_name(data)}")
    if non_empty and not data:
        raise _invalid(path, "must not be empty")
    if maximum is not None and len(data) > maximum:
        raise _invalid(path, f"lists {len(data)}; at most {maximum} are allowed")
    return data


def _text(data: object, path: str) -> str:
    if not isinstance(data, str):
        raise _invalid(path, f"expected a string, got {_type_name(data)}")
    if not data.strip():
        raise _invalid(path, "must not be empty")
    if data != data.strip():
        raise _invalid(path, "must not start or end with white space")
    if len(data) > MAX_TEXT_LENGTH:
        raise _invalid(path, f"has {len(data)} characters; at most {MAX_TEXT_LENGTH} are allowed")
    try:
        return clean_text(data, field=path, max_length=MAX_TEXT_LENGTH)
    except TextError as error:
        raise _invalid(path, error.sentence) from None


def _integer(
    data: object, path: str, *, minimum: int, maximum: int | None = None, unit: str = ""
) -> int:
    # bool is an int in Python but never a count in JSON.
    if not isinstance(data, int) or isinstance(data, bool):
        raise _invalid(path, f"expected a whole number, got {_type_name(data)}")
    if data < minimum or (maximum is not None and data > maximum):
        bounds = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise _invalid(path, f"{data} is out of range: it must be {bounds}{unit}")
    return data


def _one_of(data: object, choices: tuple[_T, ...], path: str, what: str) -> _T:
    for choice in choices:
        if data == choice:
            return choice
    raise _invalid(path, f"{_show(data)} is not {what} (one of {', '.join(choices)})")


def _show(value: object) -> str:
    """A short repr for messages: catalog values are public data, but may be huge."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
