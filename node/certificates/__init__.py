"""Certificate mutual recognition (电子证照互认): its rules, and the service that follows them.

Pure rules, synchronous, with no clock, storage or network (``now``, keys and the manifest
are passed in); they import only each other, ``trust`` and the ground floor (``wire``,
``identifiers``, ``text``, ``vocabulary``). ``model`` is what a certificate is (the seven
Yangtze Delta types, whose table is ``certificate_types``, their face fields and
validation); ``policy`` decides which fields a purpose may see and when consent is needed;
``consent`` reads and signs the holder's consent grants; ``presentation`` issues and reads
the signed offline tokens a holder shows (亮证); ``revocation`` is the issuer's signed,
versioned revocation list; ``issuers`` says which manifest keys speak for an issuing
province; ``verification`` is a verification's question and answer (``VerifyQuestion``,
``VerifyRequest``, ``Verified``, ``VerificationRefused``).

The service, which reads the store and the clock and sends through the courier: the
``requester`` asks issuers and caches their answers, and checks offline presentations; the
``issuer`` answers for this province's certificates (attestations, presentations, usage
records); the ``revocation_exchange`` publishes, pulls and holds revocation lists;
``recognition`` wires them into the ``CertificateRecognition`` the Node holds. ``library``
is where the issuer reads its certificates (the node's store or the province platform). The
service parts take what they use (the store, the clock, the credentials, the courier, the
catalog lookup, metrics), never the Node, and may import the layers below ``certificates``
(``peers``, ``delivery``, ``transport``, ``store``, ``protocol``, ``trust`` and the ground
floor). Their refusals carry a code and a field, never an HTTP status: the REST API maps
codes to statuses (``node.api.problems``).
"""
