"""Email transport: a multipart/alternative message (text + HTML) sent with smtplib.

The message is built apart from sending it. Every header is derived from the digest (Date from
its creation time, Message-ID from its id), so a resend is the same message.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Mapping
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr

from alerts.model import Digest, Rendered
from alerts.text import header_safe
from monitor.errors import ConfigError, DeliveryError
from monitor.settings import EmailChannel, read_secret


def build_message(digest: Digest, rendered: Rendered, cfg: EmailChannel) -> EmailMessage:
    """The email for a recorded digest; an address the mail library refuses raises ValueError."""
    if digest.message_id is None:
        raise ValueError("only a recorded digest (with a Message-ID) can be mailed")
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = header_safe(rendered.subject, 250)
    msg["From"] = cfg.sender
    msg["To"] = ", ".join(cfg.recipients)
    msg["Date"] = format_datetime(digest.created_at)
    msg["Message-ID"] = digest.message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Monitor-Digest"] = f"{digest.id} {header_safe(digest.channel, 100)}"
    msg.set_content(rendered.text, cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
    return msg


def _permanent(error: smtplib.SMTPException) -> bool:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return bool(codes) and all(code >= 500 for code in codes)
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code >= 500
    return False


def _describe(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
        return f"SMTP {error.smtp_code}: {text}"
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "all recipients refused: " + ", ".join(
            f"{rcpt} ({code})" for rcpt, (code, _) in error.recipients.items()
        )
    return f"{type(error).__name__}: {error}"


class EmailTransport:
    """Sends over SMTP with STARTTLS, implicit TLS or neither; logs in when a username is set."""

    def __init__(self, name: str, cfg: EmailChannel, env: Mapping[str, str]) -> None:
        self.name = name
        self.cfg = cfg
        self.env = env

    def _password(self) -> str | None:
        try:
            return read_secret(self.env, self.cfg.password_env, self.cfg.password_file)
        except ConfigError as e:
            raise DeliveryError(self.name, str(e), permanent=True) from e

    def _connect(self) -> smtplib.SMTP:
        cfg = self.cfg
        if cfg.security == "ssl":
            return smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context()
            )
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        if cfg.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp

    def send(self, digest: Digest, rendered: Rendered) -> None:
        try:
            msg = build_message(digest, rendered, self.cfg)
        except (ValueError, TypeError) as e:
            raise DeliveryError(self.name, f"cannot build the message: {e}", permanent=True) from e
        password = self._password() if self.cfg.username else None
        envelope_from = parseaddr(self.cfg.sender)[1]
        envelope_to = [addr for _, addr in getaddresses(list(self.cfg.recipients)) if addr]
        try:
            with self._connect() as smtp:
                if self.cfg.username:
                    smtp.login(self.cfg.username, password or "")
                smtp.send_message(msg, from_addr=envelope_from, to_addrs=envelope_to)
        except smtplib.SMTPException as e:
            raise DeliveryError(self.name, _describe(e), permanent=_permanent(e)) from e
        except (OSError, ssl.SSLError) as e:
            where = f"{self.cfg.host}:{self.cfg.port}"
            raise DeliveryError(self.name, f"{where}: {_describe(e)}") from e
