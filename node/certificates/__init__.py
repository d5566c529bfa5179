"""Certificate mutual recognition (电子证照互认): the sans-I/O core.

``model`` is what a certificate is (the seven Yangtze Delta types, their face fields and
validation); ``policy`` decides which fields a purpose may see and when consent is needed;
``presentation`` issues and reads the signed offline tokens a holder shows (亮证);
``revocation`` is the issuer's signed, versioned revocation list; ``issuers`` says which
manifest keys speak for an issuing province. Everything here is synchronous and pure: no
clock, storage or network. The REST, gRPC and store adapters live elsewhere.
"""
