"""The federation's shared words: its provinces, certificate types, scenes and purposes.

One table each, on the ground floor, so that every layer (the manifest in ``trust``, the
catalog in ``cases``, the disclosure policy in ``certificates``, the dashboard in ``api``)
names the same things the same way without importing one another. The modules that used to
define them (``trust.manifest``, ``cases.catalog``, ``certificates.policy``) import them
from here; what each one means in its own rules stays with those rules.

It also holds the base of the domain's refusals (``Refused``): every layer refuses in the
same three words (a stable code, the field at fault, a sentence), and each surface renders
them its own way (``node.api.problems`` as HTTP problem documents, ``node.protocol.faults``
as signed faults).

This module imports nothing of ``node``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal, NamedTuple


class Province(NamedTuple):
    code: str
    """GB/T 2260 division code of the province (``310000``)."""
    chinese: str
    """The province's Chinese name (``上海``)."""


PROVINCES: Final[Mapping[str, Province]] = MappingProxyType(
    {
        "shanghai": Province("310000", "上海"),
        "jiangsu": Province("320000", "江苏"),
        "zhejiang": Province("330000", "浙江"),
        "anhui": Province("340000", "安徽"),
    }
)
"""The federation's members by name, in GB/T 2260 order: shanghai, jiangsu, zhejiang, anhui.
Iterating it gives the names in that order; ``PROVINCES[name].code`` (also ``[0]``) is the
division code, ``.chinese`` (also ``[1]``) the Chinese name."""

CertificateType = Literal[
    "resident_id_card",
    "business_licence",
    "driving_licence",
    "vehicle_licence",
    "marriage_certificate",
    "residence_permit",
    "birth_medical_certificate",
]

CERTIFICATE_TYPES: Final[Mapping[CertificateType, str]] = {
    "resident_id_card": "居民身份证",
    "business_licence": "营业执照",
    "driving_licence": "机动车驾驶证",
    "vehicle_licence": "机动车行驶证",
    "marriage_certificate": "结婚证",
    "residence_permit": "居住证",
    "birth_medical_certificate": "出生医学证明",
}
"""The certificate types named for Yangtze Delta mutual recognition, with their Chinese names."""

Scene = Literal["hotel_check_in", "roadside_vehicle_inspection", "traffic_violation_handling"]

SCENE_NAMES: Final[tuple[Scene, ...]] = (
    "hotel_check_in",
    "roadside_vehicle_inspection",
    "traffic_violation_handling",
)
"""The named scenes of the 2020 mutual-recognition consensus; what each may see is
``node.certificates.policy.SCENES``."""

MATTER: Final = "matter"
"""The manifest's purpose token for every matter code of the federated catalog (免于提交,
case materials), whichever catalog it comes from."""

PURPOSE_TOKENS: Final[tuple[str, ...]] = (*SCENE_NAMES, MATTER)
"""What a member's manifest policy may list as purposes: each scene, and ``MATTER``."""


class Refused(Exception):
    """A request this node's rules refuse; nothing was changed or disclosed.

    ``code`` is stable and machine-readable (a problem document's ``code``, a metric label);
    ``field`` names the part of the request at fault ("" for the request as a whole);
    ``detail`` (also ``str(error)``) is the sentence a person reads, never the refused value.
    It says nothing of a transport: what HTTP or gRPC status a code takes is the API's and
    the protocol's business (``node.api.problems``, ``node.protocol.faults``).
    """

    def __init__(self, code: str, detail: str, *, field: str = "") -> None:
        super().__init__(detail)
        self.code = code
        self.field = field
        self.detail = detail
