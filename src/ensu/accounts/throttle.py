"""Sign-in throttling, per account and per address (R-GW-6's "no guessing" for people).

A failed password or TOTP code is noted twice: under the account's address (e-mail) and
under the caller's IP address. Within :data:`WINDOW`, :data:`ACCOUNT_LIMIT` failures
close the account to sign-in attempts, and :data:`ADDRESS_LIMIT` failures close the IP
address (one address guessing many accounts), until the oldest failures age out of the
window. A refused attempt is not checked at all (no password is verified while
closed) and is not noted again, so that it does not extend the lock. A success clears
the account's failures, never the address's.

The counts live in the database (``sign_in_failures``): every process behind the
portal sees the same.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ensu import clock
from ensu.accounts.models import FailureScope, SignInFailure

WINDOW = dt.timedelta(minutes=15)
ACCOUNT_LIMIT = 5
ADDRESS_LIMIT = 20


async def _wait(
    session: AsyncSession, scope: FailureScope, key: str, limit: int, now: dt.datetime
) -> float:
    """Seconds until fewer than ``limit`` failures of ``key`` are within the window."""
    since = now - WINDOW
    condition = (
        (SignInFailure.scope == scope) & (SignInFailure.key == key) & (SignInFailure.at > since)
    )
    count = await session.scalar(select(func.count()).where(condition)) or 0
    if count < limit:
        return 0.0
    times = (
        await session.scalars(select(SignInFailure.at).where(condition).order_by(SignInFailure.at))
    ).all()
    unlocking = clock.as_utc(times[count - limit]) + WINDOW
    return max(1.0, (unlocking - now).total_seconds())


async def retry_after(
    session: AsyncSession, *, account: str, address: str, now: dt.datetime
) -> float:
    """Seconds before ``account`` may try again from ``address``; 0: it may now."""
    return max(
        await _wait(session, FailureScope.ACCOUNT, account, ACCOUNT_LIMIT, now),
        await _wait(session, FailureScope.ADDRESS, address, ADDRESS_LIMIT, now),
    )


async def note_failure(
    session: AsyncSession, *, account: str, address: str, now: dt.datetime
) -> None:
    """One failure, under the account and the address; failures past the window go."""
    await session.execute(delete(SignInFailure).where(SignInFailure.at <= now - WINDOW))
    session.add(SignInFailure(scope=FailureScope.ACCOUNT, key=account, at=now))
    session.add(SignInFailure(scope=FailureScope.ADDRESS, key=address, at=now))
    await session.flush()


async def clear_account(session: AsyncSession, *, account: str) -> None:
    await session.execute(
        delete(SignInFailure).where(
            (SignInFailure.scope == FailureScope.ACCOUNT) & (SignInFailure.key == account)
        )
    )
