"""Development only: the messages ``ensu.mail`` sent, read from its outbox.

Served in the sandbox when ``ENSU_MAIL_OUTBOX`` is on (``make run`` turns it on); a 404
otherwise, production included (the settings refuse the outbox there).
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from ensu import mail
from ensu.config import Environment
from ensu.portal.web import Page, Refused


async def index(page: Page) -> Response:
    settings = page.settings
    if settings.environment is not Environment.SANDBOX or not settings.mail_outbox:
        raise Refused(404, "Cette page n'existe que dans l'environnement de développement.")
    messages = await asyncio.to_thread(mail.outbox, settings)
    return page.render("mails/index.html", messages=messages)
