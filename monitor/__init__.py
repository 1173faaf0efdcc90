"""News monitor: poll feeds, match a story's actors and topics, store, and raise digest alerts."""

__version__ = "0.1.0"
