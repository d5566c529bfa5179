import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NameMatch(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NAME_NOT_ASKED: _ClassVar[NameMatch]
    NAME_MATCHES: _ClassVar[NameMatch]
    NAME_DIFFERS: _ClassVar[NameMatch]
NAME_NOT_ASKED: NameMatch
NAME_MATCHES: NameMatch
NAME_DIFFERS: NameMatch

class Envelope(_message.Message):
    __slots__ = ("message", "signature", "key_id", "proof")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    message: bytes
    signature: bytes
    key_id: str
    proof: BatchProof
    def __init__(self, message: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., proof: _Optional[_Union[BatchProof, _Mapping]] = ...) -> None: ...

class BatchProof(_message.Message):
    __slots__ = ("tree_size", "leaf_index", "path")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    leaf_index: int
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, tree_size: _Optional[int] = ..., leaf_index: _Optional[int] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("messages", "signature", "key_id")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedScalarFieldContainer[bytes]
    signature: bytes
    key_id: str
    def __init__(self, messages: _Optional[_Iterable[bytes]] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class Header(_message.Message):
    __slots__ = ("message_id", "sender", "recipient", "sent_at", "in_reply_to", "correlation_id", "manifest_version")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    IN_REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    sender: str
    recipient: str
    sent_at: _timestamp_pb2.Timestamp
    in_reply_to: str
    correlation_id: str
    manifest_version: int
    def __init__(self, message_id: _Optional[str] = ..., sender: _Optional[str] = ..., recipient: _Optional[str] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., in_reply_to: _Optional[str] = ..., correlation_id: _Optional[str] = ..., manifest_version: _Optional[int] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("header", "receipt", "fault", "heartbeat", "probe", "catalog_announce", "case_submit", "case_update", "case_action", "certificate_verify", "attestation", "revocation_list", "revocation_list_request", "checkpoint", "cosignature", "witnessed_heads", "replica_probe", "replica_store", "heads_request")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    PROBE_FIELD_NUMBER: _ClassVar[int]
    CATALOG_ANNOUNCE_FIELD_NUMBER: _ClassVar[int]
    CASE_SUBMIT_FIELD_NUMBER: _ClassVar[int]
    CASE_UPDATE_FIELD_NUMBER: _ClassVar[int]
    CASE_ACTION_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_VERIFY_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_FIELD_NUMBER: _ClassVar[int]
    REVOCATION_LIST_REQUEST_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    WITNESSED_HEADS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_PROBE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_STORE_FIELD_NUMBER: _ClassVar[int]
    HEADS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    header: Header
    receipt: Receipt
    fault: Fault
    heartbeat: Heartbeat
    probe: Probe
    catalog_announce: CatalogAnnounce
    case_submit: CaseSubmit
    case_update: CaseUpdate
    case_action: CaseAction
    certificate_verify: CertificateVerify
    attestation: Attestation
    revocation_list: RevocationListAnnounce
    revocation_list_request: RevocationListRequest
    checkpoint: Checkpoint
    cosignature: Cosignature
    witnessed_heads: WitnessedHeads
    replica_probe: ReplicaProbe
    replica_store: ReplicaStore
    heads_request: HeadsRequest
    def __init__(self, header: _Optional[_Union[Header, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ..., fault: _Optional[_Union[Fault, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., probe: _Optional[_Union[Probe, _Mapping]] = ..., catalog_announce: _Optional[_Union[CatalogAnnounce, _Mapping]] = ..., case_submit: _Optional[_Union[CaseSubmit, _Mapping]] = ..., case_update: _Optional[_Union[CaseUpdate, _Mapping]] = ..., case_action: _Optional[_Union[CaseAction, _Mapping]] = ..., certificate_verify: _Optional[_Union[CertificateVerify, _Mapping]] = ..., attestation: _Optional[_Union[Attestation, _Mapping]] = ..., revocation_list: _Optional[_Union[RevocationListAnnounce, _Mapping]] = ..., revocation_list_request: _Optional[_Union[RevocationListRequest, _Mapping]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., cosignature: _Optional[_Union[Cosignature, _Mapping]] = ..., witnessed_heads: _Optional[_Union[WitnessedHeads, _Mapping]] = ..., replica_probe: _Optional[_Union[ReplicaProbe, _Mapping]] = ..., replica_store: _Optional[_Union[ReplicaStore, _Mapping]] = ..., heads_request: _Optional[_Union[HeadsRequest, _Mapping]] = ...) -> None: ...

class Receipt(_message.Message):
    __slots__ = ("message_id", "digest", "status", "reason", "received_at")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Receipt.Status]
        STATUS_ACCEPTED: _ClassVar[Receipt.Status]
    STATUS_UNSPECIFIED: Receipt.Status
    STATUS_ACCEPTED: Receipt.Status
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    digest: bytes
    status: Receipt.Status
    reason: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, message_id: _Optional[str] = ..., digest: _Optional[bytes] = ..., status: _Optional[_Union[Receipt.Status, str]] = ..., reason: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Fault(_message.Message):
    __slots__ = ("message_id", "digest", "code", "text", "field", "grpc_status")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    GRPC_STATUS_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    digest: bytes
    code: str
    text: str
    field: str
    grpc_status: int
    def __init__(self, message_id: _Optional[str] = ..., digest: _Optional[bytes] = ..., code: _Optional[str] = ..., text: _Optional[str] = ..., field: _Optional[str] = ..., grpc_status: _Optional[int] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("sequence", "outbox_depth")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    outbox_depth: int
    def __init__(self, sequence: _Optional[int] = ..., outbox_depth: _Optional[int] = ...) -> None: ...

class Probe(_message.Message):
    __slots__ = ("sequence", "payload")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    payload: bytes
    def __init__(self, sequence: _Optional[int] = ..., payload: _Optional[bytes] = ...) -> None: ...

class CatalogAnnounce(_message.Message):
    __slots__ = ("province", "version", "matters")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MATTERS_FIELD_NUMBER: _ClassVar[int]
    province: str
    version: int
    matters: _containers.RepeatedCompositeFieldContainer[Matter]
    def __init__(self, province: _Optional[str] = ..., version: _Optional[int] = ..., matters: _Optional[_Iterable[_Union[Matter, _Mapping]]] = ...) -> None: ...

class Matter(_message.Message):
    __slots__ = ("code", "name", "name_en", "modes", "materials", "promised_days", "department")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_EN_FIELD_NUMBER: _ClassVar[int]
    MODES_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    PROMISED_DAYS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    name_en: str
    modes: _containers.RepeatedScalarFieldContainer[str]
    materials: _containers.RepeatedCompositeFieldContainer[Material]
    promised_days: int
    department: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., name_en: _Optional[str] = ..., modes: _Optional[_Iterable[str]] = ..., materials: _Optional[_Iterable[_Union[Material, _Mapping]]] = ..., promised_days: _Optional[int] = ..., department: _Optional[str] = ...) -> None: ...

class Material(_message.Message):
    __slots__ = ("name", "kind", "certificate_type")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Material.Kind]
        KIND_UPLOAD: _ClassVar[Material.Kind]
        KIND_CERTIFICATE: _ClassVar[Material.Kind]
    KIND_UNSPECIFIED: Material.Kind
    KIND_UPLOAD: Material.Kind
    KIND_CERTIFICATE: Material.Kind
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: Material.Kind
    certificate_type: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[Material.Kind, str]] = ..., certificate_type: _Optional[str] = ...) -> None: ...

class CaseSubmit(_message.Message):
    __slots__ = ("case_id", "matter_code", "mode", "applicant", "materials", "submitted_at")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    MATTER_CODE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    APPLICANT_FIELD_NUMBER: _ClassVar[int]
    MATERIALS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    matter_code: str
    mode: str
    applicant: Applicant
    materials: _containers.RepeatedCompositeFieldContainer[CaseMaterial]
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, case_id: _Optional[str] = ..., matter_code: _Optional[str] = ..., mode: _Optional[str] = ..., applicant: _Optional[_Union[Applicant, _Mapping]] = ..., materials: _Optional[_Iterable[_Union[CaseMaterial, _Mapping]]] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Applicant(_message.Message):
    __slots__ = ("name", "code_type", "code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    code_type: str
    code: str
    def __init__(self, name: _Optional[str] = ..., code_type: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class CaseMaterial(_message.Message):
    __slots__ = ("name", "sha256", "certificate_id", "holder_code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    sha256: str
    certificate_id: str
    holder_code: str
    def __init__(self, name: _Optional[str] = ..., sha256: _Optional[str] = ..., certificate_id: _Optional[str] = ..., holder_code: _Optional[str] = ...) -> None: ...

class CaseUpdate(_message.Message):
    __slots__ = ("case_id", "sequence", "action", "by", "at", "reason", "result", "evaluation", "request_id", "due_at")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    sequence: int
    action: str
    by: str
    at: _timestamp_pb2.Timestamp
    reason: str
    result: CaseResult
    evaluation: CaseEvaluation
    request_id: str
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, case_id: _Optional[str] = ..., sequence: _Optional[int] = ..., action: _Optional[str] = ..., by: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., result: _Optional[_Union[CaseResult, _Mapping]] = ..., evaluation: _Optional[_Union[CaseEvaluation, _Mapping]] = ..., request_id: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CaseAction(_message.Message):
    __slots__ = ("case_id", "action", "at", "reason", "evaluation")
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    case_id: str
    action: str
    at: _timestamp_pb2.Timestamp
    reason: str
    evaluation: CaseEvaluation
    def __init__(self, case_id: _Optional[str] = ..., action: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., evaluation: _Optional[_Union[CaseEvaluation, _Mapping]] = ...) -> None: ...

class CaseResult(_message.Message):
    __slots__ = ("kind", "document_sha256", "certificate_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    kind: str
    document_sha256: str
    certificate_id: str
    def __init__(self, kind: _Optional[str] = ..., document_sha256: _Optional[str] = ..., certificate_id: _Optional[str] = ...) -> None: ...

class CaseEvaluation(_message.Message):
    __slots__ = ("level", "comment")
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    level: int
    comment: str
    def __init__(self, level: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class CertificateVerify(_message.Message):
    __slots__ = ("certificate_id", "holder_code", "purpose", "fields", "consent", "requester", "consent_grant", "holder_name")
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    CONSENT_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    CONSENT_GRANT_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_FIELD_NUMBER: _ClassVar[int]
    certificate_id: str
    holder_code: str
    purpose: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    consent: Consent
    requester: str
    consent_grant: bytes
    holder_name: str
    def __init__(self, certificate_id: _Optional[str] = ..., holder_code: _Optional[str] = ..., purpose: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., consent: _Optional[_Union[Consent, _Mapping]] = ..., requester: _Optional[str] = ..., consent_grant: _Optional[bytes] = ..., holder_name: _Optional[str] = ...) -> None: ...

class ConsentGrant(_message.Message):
    __slots__ = ("grant_id", "grantor", "holder_code", "purpose", "fields", "certificate_id", "requester", "issued_at", "expires_at")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTOR_FIELD_NUMBER: _ClassVar[int]
    HOLDER_CODE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    grantor: str
    holder_code: str
    purpose: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    certificate_id: str
    requester: str
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, grant_id: _Optional[str] = ..., grantor: _Optional[str] = ..., holder_code: _Optional[str] = ..., purpose: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., certificate_id: _Optional[str] = ..., requester: _Optional[str] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SignedConsent(_message.Message):
    __slots__ = ("grant", "signature", "key_id")
    GRANT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    grant: bytes
    signature: bytes
    key_id: str
    def __init__(self, grant: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class Consent(_message.Message):
    __slots__ = ("grant_id", "purpose", "expires_at", "holder_code")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    HOLDER_CODE_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    purpose: str
    expires_at: _timestamp_pb2.Timestamp
    holder_code: str
    def __init__(self, grant_id: _Optional[str] = ..., purpose: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holder_code: _Optional[str] = ...) -> None: ...

class Attestation(_message.Message):
    __slots__ = ("request_digest", "certificate_id", "certificate_type", "status", "checked_at", "valid_until", "fields", "purpose", "holder_name_match")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    HOLDER_NAME_MATCH_FIELD_NUMBER: _ClassVar[int]
    request_digest: bytes
    certificate_id: str
    certificate_type: str
    status: str
    checked_at: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    fields: _containers.ScalarMap[str, str]
    purpose: str
    holder_name_match: NameMatch
    def __init__(self, request_digest: _Optional[bytes] = ..., certificate_id: _Optional[str] = ..., certificate_type: _Optional[str] = ..., status: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fields: _Optional[_Mapping[str, str]] = ..., purpose: _Optional[str] = ..., holder_name_match: _Optional[_Union[NameMatch, str]] = ...) -> None: ...

class RevocationListAnnounce(_message.Message):
    __slots__ = ("province", "signed_list", "version")
    PROVINCE_FIELD_NUMBER: _ClassVar[int]
    SIGNED_LIST_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    province: str
    signed_list: bytes
    version: int
    def __init__(self, province: _Optional[str] = ..., signed_list: _Optional[bytes] = ..., version: _Optional[int] = ...) -> None: ...

class RevocationListRequest(_message.Message):
    __slots__ = ("held_version",)
    HELD_VERSION_FIELD_NUMBER: _ClassVar[int]
    held_version: int
    def __init__(self, held_version: _Optional[int] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("origin", "tree_size", "root_hash", "signed_at_ms", "key_id", "signature", "proofs")
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOFS_FIELD_NUMBER: _ClassVar[int]
    origin: str
    tree_size: int
    root_hash: bytes
    signed_at_ms: int
    key_id: str
    signature: bytes
    proofs: _containers.RepeatedCompositeFieldContainer[ConsistencyProof]
    def __init__(self, origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., signed_at_ms: _Optional[int] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., proofs: _Optional[_Iterable[_Union[ConsistencyProof, _Mapping]]] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("from_size", "path")
    FROM_SIZE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    from_size: int
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, from_size: _Optional[int] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Cosignature(_message.Message):
    __slots__ = ("witness", "origin", "tree_size", "root_hash", "signed_at_ms", "cosigned_at_ms", "key_id", "signature", "proofs_wanted")
    WITNESS_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    COSIGNED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PROOFS_WANTED_FIELD_NUMBER: _ClassVar[int]
    witness: str
    origin: str
    tree_size: int
    root_hash: bytes
    signed_at_ms: int
    cosigned_at_ms: int
    key_id: str
    signature: bytes
    proofs_wanted: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, witness: _Optional[str] = ..., origin: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[bytes] = ..., signed_at_ms: _Optional[int] = ..., cosigned_at_ms: _Optional[int] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ..., proofs_wanted: _Optional[_Iterable[int]] = ...) -> None: ...

class WitnessedHeads(_message.Message):
    __slots__ = ("heads",)
    HEADS_FIELD_NUMBER: _ClassVar[int]
    heads: _containers.RepeatedCompositeFieldContainer[WitnessedHead]
    def __init__(self, heads: _Optional[_Iterable[_Union[WitnessedHead, _Mapping]]] = ...) -> None: ...

class WitnessedHead(_message.Message):
    __slots__ = ("checkpoint", "cosignature")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURE_FIELD_NUMBER: _ClassVar[int]
    checkpoint: Checkpoint
    cosignature: Cosignature
    def __init__(self, checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., cosignature: _Optional[_Union[Cosignature, _Mapping]] = ...) -> None: ...

class HeadsRequest(_message.Message):
    __slots__ = ("origin",)
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    origin: str
    def __init__(self, origin: _Optional[str] = ...) -> None: ...

class ReplicaProbe(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicaStore(_message.Message):
    __slots__ = ("store_id", "request_digest")
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    store_id: str
    request_digest: bytes
    def __init__(self, store_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ...) -> None: ...
