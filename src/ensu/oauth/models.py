"""Tables of the authorization server: signing keys and revoked tokens (R-GW-4).

Access tokens themselves are not stored: they are self-contained JWTs (RFC 9068). Only
what cannot be derived from a token is kept: the keys that sign them (private part
encrypted at rest) and the ids of tokens revoked before their expiry (RFC 7009).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base


class SigningKey(Base):
    """A token signing key. The newest key with no ``retire_after`` is the current one;
    a rotated key stays published (JWKS) and trusted until ``retire_after``."""

    __tablename__ = "oauth_signing_keys"

    #: RFC 7638 JWK thumbprint of the public key.
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, str]] = mapped_column(JSON)
    #: AES-256-GCM ``nonce || ciphertext`` of the PKCS#8 DER private key, AAD = kid.
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    retire_after: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


#: The ``jti`` prefix of a revocation that cuts every token of one client issued up to its
#: ``revoked_at`` (``ensu.oauth.service.client_cutoff``): tokens are not stored (RFC 9068),
#: so an incident's isolation revokes them all at once this way (R-OPS-2).
CLIENT_CUTOFF_PREFIX = "client:"


class Revocation(Base):
    """A token revoked before its expiry (RFC 7009); purged once the token has expired."""

    __tablename__ = "oauth_revocations"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
