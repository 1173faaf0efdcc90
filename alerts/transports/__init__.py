"""Transports deliver a rendered digest on one channel; `transport_for` picks one by kind."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from alerts.model import Digest, Rendered
from monitor.settings import AppriseChannel, EmailChannel, FileChannel


class Transport(Protocol):
    """Delivers one digest; raises DeliveryError (permanent or not) when it cannot."""

    def send(self, digest: Digest, rendered: Rendered) -> None: ...


def transport_for(
    name: str,
    cfg: FileChannel | EmailChannel | AppriseChannel,
    env: Mapping[str, str],
    *,
    base_dir: Path | None = None,
) -> Transport:
    """The transport for a channel's kind (imports stay lazy: apprise is optional)."""
    if isinstance(cfg, FileChannel):
        from alerts.transports.files import FileTransport

        return FileTransport(name, cfg, base_dir=base_dir)
    if isinstance(cfg, EmailChannel):
        from alerts.transports.email import EmailTransport

        return EmailTransport(name, cfg, env)
    from alerts.transports.apprise import AppriseTransport

    return AppriseTransport(name, cfg, env)
