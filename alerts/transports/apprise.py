"""Apprise transport (optional): push the Markdown digest to URLs held in an env variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from alerts.model import Digest, Rendered
from monitor.errors import DeliveryError
from monitor.settings import AppriseChannel


def _load_apprise() -> Any:
    try:
        import apprise
    except ImportError as e:
        raise DeliveryError(
            "apprise",
            "the apprise package is not installed: pip install 'storywatch-monitor[apprise]'",
            permanent=True,
        ) from e
    return apprise


def apprise_urls(value: str | None) -> list[str]:
    """URLs from the variable's value, separated by whitespace or commas."""
    return [u for u in re.split(r"[\s,]+", value or "") if u]


class AppriseTransport:
    def __init__(self, name: str, cfg: AppriseChannel, env: Mapping[str, str]) -> None:
        self.name = name
        self.cfg = cfg
        self.env = env

    def send(self, digest: Digest, rendered: Rendered) -> None:
        urls = apprise_urls(self.env.get(self.cfg.urls_env))
        if not urls:
            raise DeliveryError(
                self.name, f"no Apprise URLs in ${self.cfg.urls_env}", permanent=True
            )
        try:
            module = _load_apprise()
        except DeliveryError as e:
            raise DeliveryError(self.name, e.args[0].split(": ", 1)[-1], permanent=True) from e
        notifier = module.Apprise()
        for url in urls:
            if not notifier.add(url):
                raise DeliveryError(self.name, "an Apprise URL was not understood", permanent=True)
        ok = notifier.notify(
            body=rendered.markdown,
            title=rendered.subject,
            body_format=module.NotifyFormat.MARKDOWN,
        )
        if not ok:
            raise DeliveryError(self.name, "Apprise reported a failed notification")
