"""What only the Shanghai platform does: its receipts and progress as the applicant sees
them, and its numeric refusal kinds. Everything every adapter does is in
``tests/test_adapter_contract.py``."""

from __future__ import annotations

from pathlib import Path

from adapters.shanghai import dialect
from adapters.shanghai.dialect import SHANGHAI
from adapters.shanghai.platform import BASE
from node.platform.adapter import ApplicationRefusal
from tests.dialects import SHANGHAI_DIALECT, refused_application, seeded_application
from tests.platforms import REFUSAL, application_body, json_body

shanghai = SHANGHAI_DIALECT.platform.serve


async def test_receipt_and_progress_in_dialect(tmp_path: Path) -> None:
    """An application entered in the dialect is answered 201 with its SHYW number and status
    10, and once acknowledged its progress shows the federation case."""
    async with shanghai(tmp_path) as sh:
        body = application_body(await sh.fixtures())
        status, reply = await sh.post(
            f"{BASE}/applications", json_body(SHANGHAI.application_form(body)), token=False
        )
        assert status == 201, reply
        reference = reply["applyNo"]
        assert reference.startswith("SHYW20260302") and reply["caseStatus"] == 10

        await sh.adapter.acknowledge(reference, "310000-20260302-0123456789abcdef")
        async with sh.session.get(f"{sh.url}{BASE}/applications/{reference}") as response:
            progress = await response.json()
        assert progress["caseId"] == "310000-20260302-0123456789abcdef"
        assert progress["caseStatus"] == 10 and progress["progress"] == []


async def test_refusal_as_the_applicant_sees_it(tmp_path: Path) -> None:
    """The applicant sees the refusal with its numeric kind (status 90); the same refusal sent
    again is answered as a duplicate; the adapter's own Malformed refusal names the field as
    the dialect does, with its kind."""
    async with shanghai(tmp_path) as sh:
        refused = await refused_application(SHANGHAI_DIALECT, sh)
        status, shown = await sh.get(f"{BASE}/applications/{refused}", token=False)
        assert status == 200
        assert (shown["caseId"], shown["caseStatus"], shown["progress"]) == (None, 90, [])
        assert shown["rejection"] == {
            "rejectCode": 60100,
            "rejectType": "invalid_id_number",
            "rejectField": "applicant.certNo",
            "rejectReason": REFUSAL.reason,
            "rejectTime": 1_772_416_800_000,
        }
        status, again = await sh.post(
            f"{BASE}/applications/{refused}/rejection",
            json_body(SHANGHAI.refusal_to_dialect(REFUSAL, dialect.dialect_field)),
        )
        assert (status, again["duplicate"], again["rejectType"]) == (200, True, "invalid_id_number")

        unreadable = await seeded_application(SHANGHAI_DIALECT, sh)
        own = ApplicationRefusal("unknown_code", "handleMode", "is not a code", in_dialect=True)
        await sh.adapter.reject_application(unreadable, own)
        status, shown = await sh.get(f"{BASE}/applications/{unreadable}", token=False)
        assert (shown["rejection"]["rejectCode"], shown["rejection"]["rejectField"]) == (
            60400,
            "handleMode",
        )
        assert sh.platform.store.counts()["refusals"] == 2


async def test_refusal_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    """A refusal whose numeric kind is not its code's, or whose code is not a stable code,
    is refused with 400 and the field at fault, and nothing is stored."""
    async with shanghai(tmp_path) as sh:
        reference = await seeded_application(SHANGHAI_DIALECT, sh)
        good = SHANGHAI.refusal_to_dialect(REFUSAL, dialect.dialect_field)
        path = f"{BASE}/applications/{reference}/rejection"
        for body, field in (
            ({**good, "rejectCode": 60300}, "rejectCode"),
            ({**good, "rejectCode": 12345}, "rejectCode"),
            ({**good, "rejectType": "Invalid ID"}, "rejectType"),
            ({k: v for k, v in good.items() if k != "rejectReason"}, "rejectReason"),
        ):
            status, refused = await sh.post(path, json_body(body))
            assert status == 400 and refused["errorField"] == field, refused
        status, _ = await sh.post(path, json_body(good), token=False)
        assert status == 401
        assert sh.platform.store.counts()["refusals"] == 0
