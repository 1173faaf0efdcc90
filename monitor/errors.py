"""The monitor's exception tree; lower-level errors are wrapped where they enter.

    MonitorError
    ├── ConfigError            bad file, key or value (names file, key path and line)
    ├── StorageError           database unreachable, foreign, corrupt or not migrated
    │   └── LockedError        another instance already polls this database
    ├── FeedError              one feed failed; recorded on the feed, the cycle goes on
    │   ├── FetchError         network, HTTP status, limits
    │   │   ├── BlockedAddressError   refused as server-side request forgery
    │   │   ├── TooLargeError         decoded body over the cap
    │   │   └── DeadlineError         total deadline exceeded
    │   └── ParseError         not a feed, malformed beyond recovery
    ├── WatchlistError         invalid watchlist (a ConfigError's sibling: previous one stays)
    └── DeliveryError          a digest could not be delivered (retried later)

Expected failures (feed errors, delivery errors) are recorded and the loop goes on;
anything else surfaces loudly.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the monitor raises on purpose."""


class ConfigError(MonitorError):
    """A configuration file is invalid; `problems` lists every problem found."""

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems or (message,)


class StorageError(MonitorError):
    """The database cannot be used as it is."""


class LockedError(StorageError):
    """Another monitor instance holds the polling lock for this database."""


class FeedError(MonitorError):
    """One feed could not be brought in; the reason is recorded on the feed."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = message
        self.status = status


class FetchError(FeedError):
    """The feed could not be fetched (network, HTTP status, limits)."""

    def __init__(
        self,
        url: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: int | None = None,
    ) -> None:
        super().__init__(url, message, status=status)
        self.retry_after_s = retry_after_s


class BlockedAddressError(FetchError):
    """The feed's host resolves to an address refused as server-side request forgery."""


class TooLargeError(FetchError):
    """The decoded body is larger than the configured cap."""


class DeadlineError(FetchError):
    """The whole fetch took longer than the per-feed deadline."""


class ParseError(FeedError):
    """The body is not a feed, or is malformed beyond recovery."""


class WatchlistError(ConfigError):
    """The watchlist is invalid; the previous one stays in force."""


class DeliveryError(MonitorError):
    """A digest could not be delivered on a channel; it will be retried."""

    def __init__(self, channel: str, message: str, *, permanent: bool = False) -> None:
        super().__init__(f"channel {channel!r}: {message}")
        self.channel = channel
        self.permanent = permanent
