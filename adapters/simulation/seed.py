"""Deterministic, realistic seed data for one province's simulated platform.

``make_seed(province, seed)`` gives the people, companies and certificate library that a
simulated platform starts with. Rules kept:

1. Same province and seed, same data, byte for byte (``Seed.to_json_bytes``): every draw
   comes from ``random.Random`` seeded with a string (hashed with SHA-512, so stable across
   processes and Python versions), never from the clock or ``hash()``. Issuing authorities
   do not depend on the seed at all: the same office has the same credit code in every run.
2. Every value passes the node's own validators: ID numbers (GB 11643) carry real district
   codes of the province and a real birth date, credit codes (GB 32100) the district of
   registration, and each certificate is built by ``parse_certificate`` before it is kept.
3. About fifty people, most registered (户籍) in the province, a few from the other member
   provinces living here on a residence permit (居住证); about ten companies; certificates
   of all seven types issued by plausible authorities of the province.
4. A few certificates are revoked, suspended or expired (``STATUS_PLAN``), and each type
   keeps at least one valid certificate. A valid certificate stays valid until at least
   ``VALID_AT_LEAST_UNTIL`` (or is long-term, 长期), so that scenarios run years from now
   still see it as valid; an expired one ended before ``REFERENCE_DATE``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from node.certificates.model import (
    CHINA_STANDARD_TIME,
    TYPES,
    CertificateType,
    parse_certificate,
    to_json,
)
from node.certificates.revocation import ReasonCode
from node.identifiers import Sex, make_certificate_id, make_credit_code, make_id_number

REFERENCE_DATE: Final = date(2026, 1, 1)
"""The simulated "today" the seed is drawn around; never the real date (rule 1)."""
VALID_AT_LEAST_UNTIL: Final = date(2029, 1, 1)
"""A certificate seeded as valid is valid at least until this date, or long-term (rule 4)."""

PERSON_COUNT: Final = 50
MIGRANT_COUNT: Final = 5
COMPANY_COUNT: Final = 10


@dataclass(frozen=True)
class District:
    division: str
    """GB/T 2260 code of the district (区)."""
    city: str
    """The city as written in addresses and office names (上海市, 南京市 …)."""
    city_division: str
    name: str
    """The district's name (徐汇区 …)."""
    plate: str
    """The vehicle-plate office letter of the city (沪A, 苏E … without the abbreviation)."""


@dataclass(frozen=True)
class ProvinceProfile:
    province: str
    prefix: str
    """How an address starts (江苏省); empty for a municipality."""
    plate_abbreviation: str
    serial_prefix: str
    """Two letters that open certificate serials issued here."""
    districts: tuple[District, ...]
    roads: tuple[str, ...]
    hospitals: tuple[str, ...]
    """Midwifery institutions (助产机构) that issue birth medical certificates."""


def _districts(rows: Sequence[tuple[str, str, str, str, str]]) -> tuple[District, ...]:
    return tuple(District(*row) for row in rows)


PROFILES: Final[Mapping[str, ProvinceProfile]] = {
    "shanghai": ProvinceProfile(
        "shanghai",
        "",
        "沪",
        "SH",
        _districts(
            [
                ("310101", "上海市", "310000", "黄浦区", "A"),
                ("310104", "上海市", "310000", "徐汇区", "B"),
                ("310105", "上海市", "310000", "长宁区", "A"),
                ("310106", "上海市", "310000", "静安区", "D"),
                ("310107", "上海市", "310000", "普陀区", "E"),
                ("310110", "上海市", "310000", "杨浦区", "F"),
                ("310112", "上海市", "310000", "闵行区", "G"),
                ("310113", "上海市", "310000", "宝山区", "H"),
                ("310115", "上海市", "310000", "浦东新区", "K"),
                ("310117", "上海市", "310000", "松江区", "L"),
            ]
        ),
        ("漕溪北路", "南京西路", "淮海中路", "张江路", "四平路", "长寿路", "虹桥路", "世纪大道"),
        ("上海市第一妇婴保健院", "复旦大学附属妇产科医院", "上海市国际和平妇幼保健院"),
    ),
    "jiangsu": ProvinceProfile(
        "jiangsu",
        "江苏省",
        "苏",
        "JS",
        _districts(
            [
                ("320102", "南京市", "320100", "玄武区", "A"),
                ("320104", "南京市", "320100", "秦淮区", "A"),
                ("320106", "南京市", "320100", "鼓楼区", "A"),
                ("320213", "无锡市", "320200", "梁溪区", "B"),
                ("320402", "常州市", "320400", "天宁区", "D"),
                ("320505", "苏州市", "320500", "虎丘区", "E"),
                ("320506", "苏州市", "320500", "吴中区", "E"),
                ("320508", "苏州市", "320500", "姑苏区", "E"),
                ("320602", "南通市", "320600", "崇川区", "F"),
                ("321002", "扬州市", "321000", "广陵区", "K"),
            ]
        ),
        ("中山路", "北京东路", "汉中路", "人民路", "干将路", "解放路", "中山北路", "石湖西路"),
        ("南京市妇幼保健院", "苏州市立医院", "无锡市妇幼保健院"),
    ),
    "zhejiang": ProvinceProfile(
        "zhejiang",
        "浙江省",
        "浙",
        "ZJ",
        _districts(
            [
                ("330102", "杭州市", "330100", "上城区", "A"),
                ("330105", "杭州市", "330100", "拱墅区", "A"),
                ("330106", "杭州市", "330100", "西湖区", "A"),
                ("330108", "杭州市", "330100", "滨江区", "A"),
                ("330203", "宁波市", "330200", "海曙区", "B"),
                ("330212", "宁波市", "330200", "鄞州区", "B"),
                ("330302", "温州市", "330300", "鹿城区", "C"),
                ("330402", "嘉兴市", "330400", "南湖区", "F"),
                ("330602", "绍兴市", "330600", "越城区", "D"),
                ("330702", "金华市", "330700", "婺城区", "G"),
            ]
        ),
        ("文三路", "延安路", "解放路", "凤起路", "学院路", "中山北路", "钱江路", "江南大道"),
        ("浙江大学医学院附属妇产科医院", "杭州市妇产科医院", "宁波市妇女儿童医院"),
    ),
    "anhui": ProvinceProfile(
        "anhui",
        "安徽省",
        "皖",
        "AH",
        _districts(
            [
                ("340102", "合肥市", "340100", "瑶海区", "A"),
                ("340103", "合肥市", "340100", "庐阳区", "A"),
                ("340104", "合肥市", "340100", "蜀山区", "A"),
                ("340111", "合肥市", "340100", "包河区", "A"),
                ("340202", "芜湖市", "340200", "镜湖区", "B"),
                ("340302", "蚌埠市", "340300", "龙子湖区", "C"),
                ("340503", "马鞍山市", "340500", "花山区", "E"),
                ("340803", "安庆市", "340800", "大观区", "H"),
                ("341002", "黄山市", "341000", "屯溪区", "J"),
                ("341202", "阜阳市", "341200", "颍州区", "K"),
            ]
        ),
        ("长江中路", "金寨路", "徽州大道", "黄山路", "芜湖路", "淮河路", "望江西路", "马鞍山路"),
        ("安徽省妇幼保健院", "合肥市妇幼保健院", "芜湖市妇幼保健院"),
    ),
}

_SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾沈"
_MALE_GIVEN: Final = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波宇浩凯健俊帆晨"
_FEMALE_GIVEN: Final = "芳娜敏静丽艳娟霞秀玲桂英丹萍婷雪琳颖倩洁慧佳欣怡"
_ETHNICITIES: Final = ("汉",) * 17 + ("回", "满", "壮")
_BRANDS: Final = ("澄明", "远帆", "恒信", "汇智", "启元", "华泰", "蓝湾", "弘毅", "嘉禾", "星河")
_INDUSTRIES: Final = (
    ("信息科技", "一般项目：技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广。"),
    ("商贸", "一般项目：日用百货销售；五金产品批发；办公用品销售；货物进出口。"),
    ("餐饮管理", "许可项目：餐饮服务。一般项目：餐饮管理；食品销售（仅销售预包装食品）。"),
    ("物流", "一般项目：普通货物仓储服务；国内货物运输代理；装卸搬运。"),
    ("建筑工程", "许可项目：建设工程施工。一般项目：园林绿化工程施工；建筑材料销售。"),
    ("生物医药", "一般项目：医学研究和试验发展；第一类医疗器械销售；技术服务。"),
)
_COMPANY_TYPES: Final = (
    "有限责任公司(自然人投资或控股)",
    "有限责任公司(自然人独资)",
    "股份有限公司(非上市、自然人投资或控股)",
)
_VEHICLES: Final = (
    ("小型轿车", "上汽大众牌SVW71810BU"),
    ("小型轿车", "丰田牌GTM7200GB"),
    ("小型普通客车", "别克牌SGM6521UAAA"),
    ("小型轿车", "比亚迪牌BYD7005BEV"),
    ("小型轿车", "特斯拉牌TSL7000BEVAR0"),
    ("轻型厢式货车", "江铃牌JX5044XXYTGA2"),
)
_VEHICLE_CLASSES: Final = ("C1", "C1", "C1", "C1", "C2", "B2", "A2", "C1E")
_PLATE_CHARACTERS: Final = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
_VIN_CHARACTERS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_VALUES: Final = {
    **{str(digit): digit for digit in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)

STATUS_PLAN: Final[Mapping[CertificateType, Mapping[int, str]]] = {
    "resident_id_card": {3: "expired"},
    "business_licence": {9: "revoked"},
    "driving_licence": {0: "revoked", 1: "suspended", 2: "expired"},
    "vehicle_licence": {0: "suspended", 5: "revoked"},
    "residence_permit": {0: "expired"},
}
"""Which certificate of each type (by its index in the type, in seeding order) is not valid."""

REVOCATION_REASONS: Final[Mapping[tuple[str, str], ReasonCode]] = {
    ("business_licence", "revoked"): "entity_deregistered",
    ("driving_licence", "revoked"): "withdrawn_by_authority",
    ("vehicle_licence", "revoked"): "holder_request",
}
"""Why a revoked certificate is revoked (吊销, 注销 …); a suspended one is ``under_review``."""


@dataclass(frozen=True)
class Person:
    name: str
    sex: Sex
    birth_date: str
    id_number: str
    household_division: str
    """Where the ID number was issued (户籍地); another province for a migrant."""
    district: str
    """The district of this province the person lives in."""
    address: str


@dataclass(frozen=True)
class Company:
    name: str
    credit_code: str
    district: str
    legal_representative: str
    address: str
    established_on: str


@dataclass(frozen=True)
class Seed:
    """What a simulated platform starts with (rule 3)."""

    province: str
    seed: int
    persons: tuple[Person, ...]
    companies: tuple[Company, ...]
    certificates: tuple[Mapping[str, Any], ...]
    """Each in ``node.certificates.model.to_json`` form."""
    revocations: tuple[Mapping[str, Any], ...]
    """Each revoked or suspended certificate: ``certificate_id``, ``status``, ``since``
    (whole epoch seconds, 00:00 Beijing time of the day it took effect) and ``reason``
    (a ``node.certificates.revocation.REASONS`` code)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "province": self.province,
            "seed": self.seed,
            "persons": [asdict(person) for person in self.persons],
            "companies": [asdict(company) for company in self.companies],
            "certificates": [dict(certificate) for certificate in self.certificates],
            "revocations": [dict(revocation) for revocation in self.revocations],
        }

    def to_json_bytes(self) -> bytes:
        """The canonical serialisation: equal seeds give equal bytes (rule 1)."""
        return json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True).encode()


def make_seed(province: str, seed: int) -> Seed:
    """The seed data of ``province``'s platform for ``seed`` (rules 1-4)."""
    if province not in PROFILES:
        raise ValueError(f"unknown province {province!r}; one of {', '.join(PROFILES)}")
    return _SeedBuilder(PROFILES[province], seed).build()


def authority_code(kind: str, division: str, *, head: str = "11") -> str:
    """The credit code of an office: the same for the same office in every run (rule 1).

    ``head`` is 11 for a government organ, 12 for a public institution (a hospital).
    """
    rng = random.Random(f"authority:{kind}:{division}")  # noqa: S311  (simulated data)
    while not (code := make_credit_code(rng, division=division)).startswith(head):
        pass
    return code


def _years_after(day: date, years: int) -> date:
    """The same calendar day ``years`` later (or earlier); 29 February becomes the 28th."""
    if day.month == 2 and day.day == 29:
        day = day.replace(day=28)
    return day.replace(year=day.year + years)


def make_vin(rng: random.Random) -> str:
    """A vehicle identification number with a correct GB 16735 check character (position 9)."""
    wmi = rng.choice(("LSV", "LFV", "LGB", "LHG", "LVS", "LC0", "LRW"))
    body = wmi + "".join(rng.choice(_VIN_CHARACTERS) for _ in range(5)) + "0"
    body += rng.choice("KLMNPR") + "".join(rng.choice(_VIN_CHARACTERS) for _ in range(7))
    total = sum(_VIN_VALUES[char] * weight for char, weight in zip(body, _VIN_WEIGHTS, strict=True))
    check = "X" if total % 11 == 10 else str(total % 11)
    return body[:8] + check + body[9:]


class _SeedBuilder:
    def __init__(self, profile: ProvinceProfile, seed: int) -> None:
        self.profile = profile
        self.seed = seed
        self.rng = random.Random(f"seed:{profile.province}:{seed}")  # noqa: S311  (simulated)
        self.id_numbers: set[str] = set()
        self.serials: dict[str, int] = {}
        self.certificates: list[dict[str, Any]] = []
        self.revocations: list[dict[str, Any]] = []
        self.by_type: dict[str, int] = {}

    def build(self) -> Seed:
        persons = [self._person(local=index < PERSON_COUNT - MIGRANT_COUNT) for index in range(50)]
        locals_ = [p for p in persons if p.household_division[:2] == self._province_prefix]
        migrants = [p for p in persons if p not in locals_]
        adults = [p for p in locals_ if p.birth_date <= "2004-01-01"]
        brands = self.rng.sample(_BRANDS, COMPANY_COUNT)
        companies = [self._company(adults, brand) for brand in brands]
        for person in locals_:
            self._resident_id_card(person)
        for company in companies:
            self._business_licence(company)
        drivers = adults[:20]
        for person in drivers:
            self._driving_licence(person)
        for owner in drivers[:8]:
            self._vehicle_licence(owner.name, "111", owner.id_number, owner.district)
        for company in companies[:4]:
            self._vehicle_licence(company.name, "001", company.credit_code, company.district)
        couples = self._couples(adults)
        for number, (husband, wife) in enumerate(couples):
            registered = self._marriage(husband, wife)
            if number < 5:
                self._birth(husband, wife, registered)
        for person in migrants:
            self._residence_permit(person)
        return Seed(
            self.profile.province,
            self.seed,
            tuple(persons),
            tuple(companies),
            tuple(self.certificates),
            tuple(self.revocations),
        )

    @property
    def _province_prefix(self) -> str:
        return self.profile.districts[0].division[:2]

    # -- people and companies ----------------------------------------------------------------

    def _person(self, *, local: bool) -> Person:
        rng = self.rng
        sex: Sex = rng.choice(("male", "female"))
        given = _MALE_GIVEN if sex == "male" else _FEMALE_GIVEN
        name = rng.choice(_SURNAMES) + "".join(rng.choice(given) for _ in range(rng.choice((1, 2))))
        birth = date(1958, 1, 1) + timedelta(days=rng.randrange(0, 365 * 46))
        district = rng.choice(self.profile.districts)
        if local:
            household = district.division
        else:
            others = [p for name_, p in PROFILES.items() if name_ != self.profile.province]
            household = rng.choice(rng.choice(others).districts).division
        while True:
            number = make_id_number(rng, division=household, birth=birth, sex=sex)
            if number not in self.id_numbers:
                self.id_numbers.add(number)
                break
        return Person(
            name,
            sex,
            birth.isoformat(),
            number,
            household,
            district.division,
            self._address(district),
        )

    def _company(self, adults: Sequence[Person], brand: str) -> Company:
        rng = self.rng
        district = rng.choice(self.profile.districts)
        industry, _ = rng.choice(_INDUSTRIES)
        city = district.city.removesuffix("市")
        name = f"{city}{brand}{industry}有限公司"
        while True:
            code = make_credit_code(rng, division=district.division)
            if code.startswith("91"):
                break
        established = date(2005, 1, 1) + timedelta(days=rng.randrange(0, 365 * 19))
        return Company(
            name,
            code,
            district.division,
            rng.choice(adults).name,
            self._address(district),
            established.isoformat(),
        )

    def _address(self, district: District) -> str:
        rng = self.rng
        number = rng.randrange(1, 1200)
        room = rng.randrange(1, 30) * 100 + rng.randrange(1, 6)
        return (
            f"{self.profile.prefix}{district.city}{district.name}"
            f"{rng.choice(self.profile.roads)}{number}号{room}室"
        )

    def _couples(self, adults: Sequence[Person]) -> list[tuple[Person, Person]]:
        men = [p for p in adults if p.sex == "male"]
        women = [p for p in adults if p.sex == "female"]
        return list(zip(men[:8], women[:8], strict=False))

    # -- certificates ------------------------------------------------------------------------

    def _district(self, division: str) -> District:
        return next(d for d in self.profile.districts if d.division == division)

    def _police(self, division: str) -> tuple[str, str]:
        district = self._district(division)
        short = district.name.removesuffix("新区").removesuffix("区")
        return f"{district.city}公安局{short}分局", authority_code("police", division)

    def _traffic_police(self, division: str) -> tuple[str, str]:
        district = self._district(division)
        if district.city == "上海市":
            return "上海市公安局交通警察总队", authority_code("traffic", district.city_division)
        return f"{district.city}公安局交通警察支队", authority_code(
            "traffic", district.city_division
        )

    def _market_regulator(self, division: str) -> tuple[str, str]:
        district = self._district(division)
        return (
            f"{district.city}{district.name}市场监督管理局",
            authority_code("market", division),
        )

    def _civil_affairs(self, division: str) -> tuple[str, str]:
        district = self._district(division)
        return f"{district.city}{district.name}民政局", authority_code("civil", division)

    def _issue(
        self,
        certificate_type: CertificateType,
        authority: tuple[str, str],
        holder: tuple[str, str, str],
        dates: tuple[date, date, date | None],
        fields: dict[str, str],
    ) -> None:
        index = self.by_type.get(certificate_type, 0)
        self.by_type[certificate_type] = index + 1
        status = STATUS_PLAN.get(certificate_type, {}).get(index, "valid")
        issued_on, valid_from, valid_until = dates
        if status == "expired":
            # An expired certificate ended before the reference date (rule 4).
            years = 6 if valid_until is None else max(1, (valid_until - valid_from).days // 365)
            valid_until = REFERENCE_DATE - timedelta(days=30 + self.rng.randrange(0, 300))
            valid_from = issued_on = _years_after(valid_until, -years)
        elif valid_until is not None and valid_until < VALID_AT_LEAST_UNTIL:
            valid_until = VALID_AT_LEAST_UNTIL + timedelta(days=self.rng.randrange(0, 1500))
        count = self.serials.get(certificate_type, 0) + 1
        self.serials[certificate_type] = count
        type_letter = "ABCDEFG"[list(TYPES).index(certificate_type)]
        serial = f"{self.profile.serial_prefix}{type_letter}{issued_on:%Y}{count:05d}"
        authority_name, authority_credit_code = authority
        holder_name, code_type, code = holder
        cert_id = make_certificate_id(
            TYPES[certificate_type].type_code, authority_credit_code, serial
        )
        data = {
            "certificate_id": str(cert_id),
            "type": certificate_type,
            "issuing_authority": authority_name,
            "issuing_authority_code": authority_credit_code,
            "holder_name": holder_name,
            "holder_code_type": code_type,
            "holder_code": code,
            "issued_on": issued_on.isoformat(),
            "valid_from": valid_from.isoformat(),
            "valid_until": None if valid_until is None else valid_until.isoformat(),
            "status": status,
            "fields": fields,
        }
        # Rule 2: what the library holds is exactly what the node's model accepts.
        self.certificates.append(to_json(parse_certificate(data)))
        if status in ("revoked", "suspended"):
            span = max(1, (REFERENCE_DATE - issued_on).days)
            day = issued_on + timedelta(days=self.rng.randrange(1, span + 1))
            midnight = datetime(day.year, day.month, day.day, tzinfo=CHINA_STANDARD_TIME)
            self.revocations.append(
                {
                    "certificate_id": str(cert_id),
                    "status": status,
                    "since": int(midnight.timestamp()),
                    "reason": REVOCATION_REASONS.get((certificate_type, status), "under_review"),
                }
            )

    def _resident_id_card(self, person: Person) -> None:
        birth = date.fromisoformat(person.birth_date)
        issued = date(2019, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 6))
        age = issued.year - birth.year
        term = 10 if age < 26 else 20 if age < 46 else None
        until = None if term is None else _years_after(issued, term)
        self._issue(
            "resident_id_card",
            self._police(person.district),
            (person.name, "111", person.id_number),
            (issued, issued, until),
            {
                "name": person.name,
                "sex": person.sex,
                "ethnicity": self.rng.choice(_ETHNICITIES),
                "birth_date": person.birth_date,
                "address": person.address,
                "id_number": person.id_number,
            },
        )

    def _business_licence(self, company: Company) -> None:
        established = date.fromisoformat(company.established_on)
        industry = next(scope for name, scope in _INDUSTRIES if name in company.name)
        capital = self.rng.choice((50, 100, 200, 500, 1000, 3000))
        self._issue(
            "business_licence",
            self._market_regulator(company.district),
            (company.name, "001", company.credit_code),
            (established, established, None),
            {
                "company_name": company.name,
                "credit_code": company.credit_code,
                "company_type": self.rng.choice(_COMPANY_TYPES),
                "legal_representative": company.legal_representative,
                "registered_capital": f"人民币{capital}.0000万元整",
                "established_on": company.established_on,
                "business_scope": industry,
                "address": company.address,
            },
        )

    def _driving_licence(self, person: Person) -> None:
        birth = date.fromisoformat(person.birth_date)
        issued = date(2021, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 4))
        driving_years = max(1, issued.year - birth.year - 18)
        first = birth.replace(year=birth.year + 18 + self.rng.randrange(driving_years), day=1)
        self._issue(
            "driving_licence",
            self._traffic_police(person.district),
            (person.name, "111", person.id_number),
            (issued, issued, _years_after(issued, 10)),
            {
                "name": person.name,
                "sex": person.sex,
                "nationality": "中国",
                "address": person.address,
                "birth_date": person.birth_date,
                "first_issued_on": max(first, date(1990, 1, 1)).isoformat(),
                "vehicle_classes": self.rng.choice(_VEHICLE_CLASSES),
                "licence_number": person.id_number,
            },
        )

    def _vehicle_licence(self, owner: str, code_type: str, code: str, division: str) -> None:
        district = self._district(division)
        plate_tail = "".join(self.rng.choice(_PLATE_CHARACTERS) for _ in range(5))
        registered = date(2016, 1, 1) + timedelta(days=self.rng.randrange(0, 365 * 9))
        vehicle_type, model = self.rng.choice(_VEHICLES)
        self._issue(
            "vehicle_licence",
            self._traffic_police(division),
            (owner, code_type, code),
            (registered, registered, None),
            {
                "plate_number": f"{self.profile.plate_abbreviation}{district.plate}{plate_tail}",
                "vehicle_type": vehicle_type,
                "owner": owner,
                "use_character": "非营运" if code_type == "111" else "货运",
                "brand_model": model,
                "vin": make_vin(self.rng),
                "engine_number": f"{self.rng.choice('DEGHKN')}{self.rng.randrange(10**7, 10**8)}",
                "registered_on": registered.isoformat(),
            },
        )

    def _marriage(self, husband: Person, wife: Person) -> date:
        older = max(date.fromisoformat(husband.birth_date), date.fromisoformat(wife.birth_date))
        earliest = max(older.replace(year=older.year + 22, day=1), date(2000, 1, 1))
        span = max(1, (date(2025, 6, 1) - earliest).days)
        registered = earliest + timedelta(days=self.rng.randrange(span))
        number = f"J{husband.district}-{registered:%Y}-{self.rng.randrange(1, 10**6):06d}"
        face = {
            "certificate_number": number,
            "registered_on": registered.isoformat(),
            "husband_name": husband.name,
            "husband_id_number": husband.id_number,
            "wife_name": wife.name,
            "wife_id_number": wife.id_number,
        }
        # Each spouse holds a book of their own (结婚证 is issued in pairs).
        for spouse in (husband, wife):
            self._issue(
                "marriage_certificate",
                self._civil_affairs(husband.district),
                (spouse.name, "111", spouse.id_number),
                (registered, registered, None),
                dict(face),
            )
        return registered

    def _birth(self, husband: Person, wife: Person, married: date) -> None:
        span = max(1, (date(2025, 10, 1) - married).days - 300)
        born = married + timedelta(days=300 + self.rng.randrange(span))
        minute = self.rng.randrange(0, 24 * 60)
        index = self.rng.randrange(len(self.profile.hospitals))
        hospital = self.profile.hospitals[index]
        # A hospital sits in one district whoever gives birth there.
        division = self.profile.districts[index].division
        sex: Sex = self.rng.choice(("male", "female"))
        given = _MALE_GIVEN if sex == "male" else _FEMALE_GIVEN
        self._issue(
            "birth_medical_certificate",
            (hospital, authority_code(f"hospital:{hospital}", division, head="12")),
            (wife.name, "111", wife.id_number),
            (born + timedelta(days=3), born + timedelta(days=3), None),
            {
                "certificate_number": self.rng.choice("NOPQR")
                + str(self.rng.randrange(10**8, 10**9)),
                "child_name": husband.name[0] + "".join(self.rng.choice(given) for _ in range(2)),
                "sex": sex,
                "born_at": f"{born.isoformat()}T{minute // 60:02d}:{minute % 60:02d}",
                "birth_place": f"{self.profile.prefix}{hospital}",
                "mother_name": wife.name,
                "mother_id_number": wife.id_number,
                "father_name": husband.name,
                "father_id_number": husband.id_number,
            },
        )

    def _residence_permit(self, person: Person) -> None:
        issued = date(2025, 1, 1) + timedelta(days=self.rng.randrange(0, 300))
        self._issue(
            "residence_permit",
            self._police(person.district),
            (person.name, "111", person.id_number),
            (issued, issued, _years_after(issued, 5)),
            {
                "name": person.name,
                "sex": person.sex,
                "id_number": person.id_number,
                "address": person.address,
            },
        )


__all__ = [
    "PROFILES",
    "REFERENCE_DATE",
    "STATUS_PLAN",
    "VALID_AT_LEAST_UNTIL",
    "Company",
    "Person",
    "Seed",
    "authority_code",
    "make_seed",
    "make_vin",
]
