"""Valid certificates of every type, signing keys and a manifest, for the certificate tests.

Everything is built from fixed seeds and a fixed clock, so each test sees the same data.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, date, datetime
from typing import Any

from node.certificates.model import TYPES, Certificate, CertificateType, parse_certificate
from node.identifiers import make_certificate_id, make_credit_code, make_id_number
from node.trust.keys import SigningKey
from node.trust.manifest import PROVINCES, KeyEntry, Manifest, Member

TODAY = date(2025, 6, 1)
NOW = datetime(2025, 6, 1, 2, 0, tzinfo=UTC).timestamp()
"""10:00 on 2025-06-01 in Beijing."""
DAY = 86_400.0


def _credit_code(seed: int, division: str, head: str = "11") -> str:
    """A credit code registered in ``division`` whose first two characters are ``head``.

    11 is a government organ, 91 a company (GB 32100).
    """
    while not (code := make_credit_code(random.Random(seed), division=division)).startswith(head):
        seed += 1000
    return code


LI_MINGHUA = make_id_number(
    random.Random(1), division="310104", birth=date(1990, 5, 17), sex="male"
)
WANG_JING = make_id_number(
    random.Random(2), division="320506", birth=date(1992, 11, 3), sex="female"
)
OTHER_PERSON = make_id_number(
    random.Random(3), division="330106", birth=date(1985, 1, 9), sex="male"
)
COMPANY = _credit_code(4, "310115", head="91")

XUHUI_POLICE = _credit_code(10, "310104")
SHANGHAI_TRAFFIC_POLICE = _credit_code(11, "310000")
PUDONG_MARKET_REGULATOR = _credit_code(12, "310115")
XUHUI_CIVIL_AFFAIRS = _credit_code(13, "310104")
SUZHOU_POLICE = _credit_code(14, "320500")
HANGZHOU_HEALTH = _credit_code(15, "330100")
HEFEI_LUYANG_POLICE = _credit_code(16, "340103")
VIN = "LSVAU2187N2123456"


def _sample(
    certificate_type: CertificateType,
    authority: tuple[str, str],
    serial: str,
    holder: tuple[str, str, str],
    dates: tuple[str, str, str | None],
    fields: dict[str, str],
) -> dict[str, Any]:
    authority_name, authority_code = authority
    holder_name, code_type, code = holder
    issued_on, valid_from, valid_until = dates
    cert_id = make_certificate_id(TYPES[certificate_type].type_code, authority_code, serial)
    return {
        "certificate_id": str(cert_id),
        "type": certificate_type,
        "issuing_authority": authority_name,
        "issuing_authority_code": authority_code,
        "holder_name": holder_name,
        "holder_code_type": code_type,
        "holder_code": code,
        "issued_on": issued_on,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "status": "valid",
        "fields": fields,
    }


_SAMPLES: dict[CertificateType, dict[str, Any]] = {
    "resident_id_card": _sample(
        "resident_id_card",
        ("上海市公安局徐汇分局", XUHUI_POLICE),
        "SH0A17C3",
        ("李明华", "111", LI_MINGHUA),
        ("2015-03-02", "2015-03-02", "2035-03-02"),
        {
            "name": "李明华",
            "sex": "male",
            "ethnicity": "汉",
            "birth_date": "1990-05-17",
            "address": "上海市徐汇区漕溪北路88弄3号502室",
            "id_number": LI_MINGHUA,
        },
    ),
    "business_licence": _sample(
        "business_licence",
        ("上海市浦东新区市场监督管理局", PUDONG_MARKET_REGULATOR),
        "PD20190004127",
        ("上海澄明信息科技有限公司", "001", COMPANY),
        ("2019-04-12", "2019-04-12", None),
        {
            "company_name": "上海澄明信息科技有限公司",
            "credit_code": COMPANY,
            "company_type": "有限责任公司(自然人投资或控股)",
            "legal_representative": "李明华",
            "registered_capital": "人民币500.0000万元整",
            "established_on": "2019-04-12",
            "business_scope": "一般项目：技术服务、技术开发、技术咨询、技术交流、技术转让。",
            "address": "中国(上海)自由贸易试验区张江路665号3层",
        },
    ),
    "driving_licence": _sample(
        "driving_licence",
        ("上海市公安局交通警察总队", SHANGHAI_TRAFFIC_POLICE),
        "JZ2022080112",
        ("李明华", "111", LI_MINGHUA),
        ("2022-08-01", "2022-08-01", "2032-08-01"),
        {
            "name": "李明华",
            "sex": "male",
            "nationality": "中国",
            "address": "上海市徐汇区漕溪北路88弄3号502室",
            "birth_date": "1990-05-17",
            "first_issued_on": "2010-08-01",
            "vehicle_classes": "C1",
            "licence_number": LI_MINGHUA,
        },
    ),
    "vehicle_licence": _sample(
        "vehicle_licence",
        ("上海市公安局交通警察总队", SHANGHAI_TRAFFIC_POLICE),
        "XS2021061807",
        ("李明华", "111", LI_MINGHUA),
        ("2021-06-18", "2021-06-18", "2027-06-30"),
        {
            "plate_number": "沪A8K2Q7",
            "vehicle_type": "小型轿车",
            "owner": "李明华",
            "use_character": "非营运",
            "brand_model": "上汽大众牌SVW71810BU",
            "vin": VIN,
            "engine_number": "DJ2309871",
            "registered_on": "2021-06-18",
        },
    ),
    "marriage_certificate": _sample(
        "marriage_certificate",
        ("上海市徐汇区民政局", XUHUI_CIVIL_AFFAIRS),
        "JH20201001045",
        ("李明华", "111", LI_MINGHUA),
        ("2020-10-01", "2020-10-01", None),
        {
            "certificate_number": "J310104-2020-004512",
            "registered_on": "2020-10-01",
            "husband_name": "李明华",
            "husband_id_number": LI_MINGHUA,
            "wife_name": "王静",
            "wife_id_number": WANG_JING,
        },
    ),
    "residence_permit": _sample(
        "residence_permit",
        ("苏州市公安局", SUZHOU_POLICE),
        "JZZ2501100031",
        ("王静", "111", WANG_JING),
        ("2025-01-10", "2025-01-10", "2026-01-10"),
        {
            "name": "王静",
            "sex": "female",
            "id_number": WANG_JING,
            "address": "江苏省苏州市工业园区星湖街328号",
        },
    ),
    "birth_medical_certificate": _sample(
        "birth_medical_certificate",
        ("杭州市卫生健康委员会", HANGZHOU_HEALTH),
        "CS2024030811",
        ("王静", "111", WANG_JING),
        ("2024-03-10", "2024-03-10", None),
        {
            "certificate_number": "Q330123456",
            "child_name": "李小雨",
            "sex": "female",
            "born_at": "2024-03-08T06:42",
            "birth_place": "浙江省杭州市上城区妇幼保健院",
            "mother_name": "王静",
            "mother_id_number": WANG_JING,
            "father_name": "李明华",
            "father_id_number": LI_MINGHUA,
        },
    ),
}


def sample_json(certificate_type: CertificateType) -> dict[str, Any]:
    """A fresh, valid JSON form of a certificate of ``certificate_type`` (safe to change)."""
    return copy.deepcopy(_SAMPLES[certificate_type])


def sample(certificate_type: CertificateType, **changes: Any) -> Certificate:
    """A valid certificate of ``certificate_type``, with top-level JSON values replaced."""
    data = sample_json(certificate_type)
    data.update(changes)
    return parse_certificate(data)


def anhui_area_code_card() -> dict[str, Any]:
    """A resident ID card from the Anhui system whose identifiers carry an area code."""
    data = sample_json("resident_id_card")
    cert_id = make_certificate_id(TYPES["resident_id_card"].type_code, "340103", "AH0001")
    data.update(
        certificate_id=str(cert_id),
        issuing_authority="合肥市公安局庐阳分局",
        issuing_authority_code=HEFEI_LUYANG_POLICE,
    )
    return data


def manifest_for(keys: dict[str, SigningKey], *, revoked: frozenset[str] = frozenset()) -> Manifest:
    """A manifest whose members are ``keys``' provinces, each key valid around ``NOW``."""
    members = tuple(
        Member(
            node_id=f"{province}-node",
            province=province,
            code=PROVINCES[province][0],
            endpoint="127.0.0.1:0",
            keys=(
                KeyEntry(
                    key_id=key.key_id,
                    verify_key=key.verify_key,
                    not_before=NOW - 30 * DAY,
                    not_after=NOW + 30 * DAY,
                    revoked=key.key_id in revoked,
                ),
            ),
            may_send=frozenset(),
        )
        for province, key in keys.items()
    )
    return Manifest("yrd", 1, NOW - DAY, NOW + 30 * DAY, members)
