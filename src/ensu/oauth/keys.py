"""Token signing keys: ES256 (P-256), private parts encrypted at rest, rotation (R-GW-4).

- Storage: ``oauth_signing_keys``; the private key (PKCS#8 DER) is sealed with AES-256-GCM
  under a key derived from ``ENSU_SECRET_KEY`` with HKDF-SHA256; the kid is the AAD, so a
  sealed key cannot be swapped onto another row. The database alone signs nothing.
- Current key: the newest one not scheduled for retirement; created on first use.
- Rotation: a new current key; the previous ones stay published in the JWKS and trusted
  for verification until ``retire_after`` = rotation time + the longest token lifetime +
  the verification leeway, so that no token they signed is cut short; then they
  disappear from both.
- :class:`KeyRing`: the verification keys cached in process for the gateway's hot path.
- :class:`CurrentKey`: the signing key cached in process for the token endpoint.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc.jwk import ECKey
from pydantic import SecretStr
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ensu.audit import service as audit
from ensu.audit.tags import EventTag
from ensu.oauth.models import SigningKey

ALGORITHM = "ES256"
CURVE = "P-256"
#: The longest token lifetime the settings allow (``token_ttl_seconds`` ≤ 3600).
MAX_TOKEN_TTL_SECONDS = 3600
#: Clock skew tolerated when verifying ``exp``/``nbf``/``iat``.
LEEWAY_SECONDS = 30
#: How long a rotated key stays published and trusted.
RETENTION = dt.timedelta(seconds=MAX_TOKEN_TTL_SECONDS + LEEWAY_SECONDS)
_HKDF_INFO = b"ensu:oauth:signing-keys:v1"
_NONCE_BYTES = 12


class KeyDecryptionError(Exception):
    """A stored private key does not open: wrong ``ENSU_SECRET_KEY`` or tampered row."""


@dataclass(frozen=True, slots=True)
class ActiveKey:
    """The current signing key (private)."""

    kid: str
    key: ECKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A published public key; ``not_after`` (POSIX seconds) is when it stops being trusted."""

    kid: str
    key: ECKey
    not_after: float | None


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def wrapping_key(secret_key: SecretStr) -> bytes:
    """The AES-256 key that seals private keys, derived from the settings' secret."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO)
    return hkdf.derive(secret_key.get_secret_value().encode("utf-8"))


def seal(private_der: bytes, *, kid: str, wrapping: bytes) -> bytes:
    """``nonce || AES-GCM(private_der)`` with the kid as associated data."""
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + AESGCM(wrapping).encrypt(nonce, private_der, kid.encode("utf-8"))


def unseal(blob: bytes, *, kid: str, wrapping: bytes) -> bytes:
    """The private key DER sealed by :func:`seal`; :class:`KeyDecryptionError` otherwise."""
    nonce, ciphertext = blob[:_NONCE_BYTES], blob[_NONCE_BYTES:]
    try:
        return AESGCM(wrapping).decrypt(nonce, ciphertext, kid.encode("utf-8"))
    except InvalidTag as exc:
        raise KeyDecryptionError(f"signing key {kid} does not open") from exc


def public_jwk(key: ECKey, kid: str) -> dict[str, str]:
    """The public JWK as published: ``kty crv x y`` plus ``kid``, ``alg``, ``use``."""
    jwk = {name: str(value) for name, value in key.as_dict(private=False).items()}
    jwk.update(kid=kid, alg=ALGORITHM, use="sig")
    return jwk


def _generate(*, wrapping: bytes, now: dt.datetime) -> tuple[SigningKey, ActiveKey]:
    key = ECKey.generate_key(CURVE)
    kid = key.thumbprint()  # RFC 7638: stable, derived from the public key
    private = key.as_der(private=True)
    row = SigningKey(
        kid=kid,
        alg=ALGORITHM,
        public_jwk=public_jwk(key, kid),
        private_key=seal(private, kid=kid, wrapping=wrapping),
        created_at=now,
        retire_after=None,
    )
    return row, ActiveKey(kid=kid, key=key)


async def _create(
    session: AsyncSession, *, secret_key: SecretStr, now: dt.datetime, actor: str
) -> ActiveKey:
    row, active = _generate(wrapping=wrapping_key(secret_key), now=now)
    session.add(row)
    await session.flush()
    await audit.record_event(
        session=session, tag=EventTag.OAUTH_KEY_CREATED, actor=actor, details={"kid": row.kid}
    )
    return active


async def current(
    *, session: AsyncSession, secret_key: SecretStr, now: dt.datetime, actor: str = "system"
) -> ActiveKey:
    """The current signing key, created if there is none."""
    row = (
        await session.execute(
            select(SigningKey.kid, SigningKey.private_key)
            .where(SigningKey.retire_after.is_(None))
            .order_by(SigningKey.created_at.desc(), SigningKey.kid)
            .limit(1)
        )
    ).first()
    if row is None:
        return await _create(session, secret_key=secret_key, now=now, actor=actor)
    return _opened(row.kid, row.private_key, secret_key.get_secret_value())


@lru_cache(maxsize=16)
def _opened(kid: str, sealed: bytes, secret: str) -> ActiveKey:
    """The key ``sealed`` under ``secret``, opened once per process (deriving, opening
    and importing it cost about as much as signing: the token endpoint's hot path)."""
    der = unseal(sealed, kid=kid, wrapping=wrapping_key(SecretStr(secret)))
    private = serialization.load_der_private_key(der, password=None)
    return ActiveKey(kid=kid, key=ECKey.import_key(private))  # type: ignore[arg-type]


async def rotate(
    *, session: AsyncSession, secret_key: SecretStr, now: dt.datetime, actor: str
) -> ActiveKey:
    """Make a new current key; the previous ones retire after :data:`RETENTION`."""
    retire_after = now + RETENTION
    result = await session.execute(
        update(SigningKey)
        .where(SigningKey.retire_after.is_(None))
        .values(retire_after=retire_after)
        .returning(SigningKey.kid)
    )
    previous = sorted(result.scalars())
    active = await _create(session, secret_key=secret_key, now=now, actor=actor)
    await audit.record_event(
        session=session,
        tag=EventTag.OAUTH_KEY_ROTATED,
        actor=actor,
        details={
            "kid": active.kid,
            "previous": previous,
            "previous_retire_after": retire_after.isoformat(),
        },
    )
    return active


async def all_keys(*, session: AsyncSession) -> list[SigningKey]:
    """Every key ever made, newest first (for ``ensu keys list``)."""
    result = await session.scalars(
        select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.kid)
    )
    return list(result)


async def published(*, session: AsyncSession, now: dt.datetime) -> list[SigningKey]:
    """The keys still trusted at ``now``: the current one and those not yet retired."""
    result = await session.scalars(
        select(SigningKey)
        .where(or_(SigningKey.retire_after.is_(None), SigningKey.retire_after > now))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
    )
    return list(result)


def status(row: SigningKey, now: dt.datetime) -> str:
    """``current``, ``published`` (rotated, still trusted) or ``retired``."""
    if row.retire_after is None:
        return "current"
    return "published" if _utc(row.retire_after) > now else "retired"


async def verification_keys(
    *, session: AsyncSession, now: dt.datetime
) -> dict[str, VerificationKey]:
    """The published public keys by kid, for :func:`ensu.oauth.tokens.verify`."""
    keys = {}
    for row in await published(session=session, now=now):
        not_after = _utc(row.retire_after).timestamp() if row.retire_after else None
        key = ECKey.import_key(dict(row.public_jwk))
        keys[row.kid] = VerificationKey(kid=row.kid, key=key, not_after=not_after)
    return keys


async def jwks(*, session: AsyncSession, now: dt.datetime) -> dict[str, list[dict[str, str]]]:
    """The JWK Set document (RFC 7517 §5): public keys only."""
    return {"keys": [dict(row.public_jwk) for row in await published(session=session, now=now)]}


class KeyRing:
    """Verification keys cached in process for the hot path.

    Reloaded when older than ``max_age``, or on demand (``refresh=True``, e.g. after an
    unknown kid, which is how a rotation made by another process is learnt), but at most
    once per ``min_interval`` so that tokens with made-up kids cannot hammer the
    database. A cached key past its ``not_after`` is refused by ``verify`` anyway.
    """

    def __init__(
        self,
        *,
        max_age: float = 60.0,
        min_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_age, self._min_interval, self._clock = max_age, min_interval, clock
        self._keys: Mapping[str, VerificationKey] = {}
        self._loaded_at: float | None = None

    def _due(self, refresh: bool) -> bool:
        if self._loaded_at is None:
            return True
        age = self._clock() - self._loaded_at
        return age >= self._max_age or (refresh and age >= self._min_interval)

    async def keys(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        now: dt.datetime,
        refresh: bool = False,
    ) -> Mapping[str, VerificationKey]:
        """The verification keys, reloaded from the database when due."""
        if self._due(refresh):
            async with sessionmaker() as session:
                self._keys = await verification_keys(session=session, now=now)
            self._loaded_at = self._clock()
        return self._keys


class CurrentKey:
    """The current signing key cached in process: the token endpoint's hot path reads no
    database (R-GW-4).

    Reloaded when older than ``max_age`` (a rotation made by another process is picked
    up within that time; meanwhile this process signs with the previous key, which stays
    published and trusted for :data:`RETENTION`, so no token it signs is refused), and at
    once after :meth:`clear` (a rotation made in this process). One load at a time: the
    first calls after a start share it, so that no two of them create a first key.
    """

    def __init__(self, *, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self._max_age, self._clock = max_age, clock
        self._key: ActiveKey | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> ActiveKey | None:
        if self._key is not None and self._clock() - self._loaded_at < self._max_age:
            return self._key
        return None

    async def get(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        secret_key: SecretStr,
        now: dt.datetime,
    ) -> ActiveKey:
        """The current key, loaded (or created, on first use) when due."""
        key = self._fresh()
        if key is not None:
            return key
        async with self._lock:
            key = self._fresh()
            if key is None:
                async with sessionmaker() as session, session.begin():
                    key = await current(session=session, secret_key=secret_key, now=now)
                self._key, self._loaded_at = key, self._clock()
            return key

    def clear(self) -> None:
        self._key = None
