"""The quota counters' table in the main database, for the PostgreSQL backend (R-Q-1).

One row per téléservice and window (the Unix minute): ``count`` hits so far. Rows of
windows that are over are deleted by the counters themselves. The SQLite backend keeps
the same table in its own file, ``var/quota.db`` (see :mod:`ensu.gateway.quota.sqlite`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ensu.db import Base


class QuotaCounterRow(Base):
    """Hits of ``key`` (an ``ID_Teleservice``) in the window ``minute``."""

    __tablename__ = "quota_counters"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    count: Mapped[int] = mapped_column(Integer)
