"""Golden files: fixed matches and a fixed `now` render exactly tests/golden/digest.*.

Regenerate deliberately with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.digest import build_digest
from alerts.model import DeliveredStory, Digest, FailingFeed, PendingMatch, SourceReport
from alerts.render import render, render_atom
from monitor.settings import FileChannel

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
ATOM = "{http://www.w3.org/2005/Atom}"


def golden_pending() -> list[PendingMatch]:
    t0 = NOW - timedelta(hours=5)
    members = (
        SourceReport(
            "Kyiv Wire",
            "Envoys agree to meet in Riyadh next week",
            "https://kyivwire.example/riyadh",
            t0,
        ),
        SourceReport(
            "ТАСС",
            "Стороны договорились о встрече в Эр-Рияде",
            "https://tass.example/123",
            t0 + timedelta(minutes=14),
        ),
        SourceReport(
            "Суспільне", "Делегації зустрінуться в Ер-Ріяді", None, t0 + timedelta(minutes=40)
        ),
    )

    def base(match_id: int, **kw: object) -> PendingMatch:
        fields: dict[str, object] = {
            "match_id": match_id,
            "item_id": 100 + match_id,
            "score": 4.0,
            "topics": ("negotiations",),
            "actors": ("witkoff",),
            "terms": ("talks",),
            "snippet": "",
            "matched_at": NOW - timedelta(hours=1),
            "title": "",
            "url": None,
            "published_at": None,
            "first_seen_at": t0,
            "feed_id": 1,
            "feed_name": "Kyiv Wire",
        }
        fields.update(kw)
        return PendingMatch(**fields)  # type: ignore[arg-type]

    return [
        base(
            1,
            title="Envoys agree to meet in Riyadh next week",
            url="https://kyivwire.example/riyadh",
            score=6.5,
            story_id=7,
            story_members=members,
            snippet="US envoy **Witkoff** said the **talks** would start on Tuesday.",
            published_at=t0 - timedelta(minutes=5),
            actors=("witkoff", "lavrov"),
        ),
        base(
            2,
            title="Стороны договорились о встрече в Эр-Рияде",
            url="https://tass.example/123",
            feed_name="ТАСС",
            story_id=7,
            story_members=members,
            score=5.0,
            first_seen_at=t0 + timedelta(minutes=14),
        ),
        base(
            3,
            title="EU prepares a new sanctions package",
            url="https://paper.example/eu",
            feed_name="Brussels Daily",
            topics=("sanctions", "negotiations"),
            score=3.2,
            snippet="The **sanctions** package targets shadow-fleet tankers.",
            first_seen_at=t0 + timedelta(hours=2),
            actors=("eu",),
            terms=("sanctions",),
        ),
        base(
            4,
            title="Kremlin comments on the prisoner exchange",
            url="https://wire.example/px",
            feed_name="Moscow Wire",
            story_id=8,
            score=2.9,
            first_seen_at=t0 + timedelta(hours=3),
            actors=("peskov", "umerov"),
            delivered=DeliveredStory(
                3, frozenset({"peskov"}), frozenset({"negotiations"}), frozenset({"talks"}), 4
            ),
            snippet="**Peskov** said the exchange was agreed in principle.",
        ),
        base(
            5,
            title="Grain corridor traffic resumes",
            url="https://port.example/grain",
            feed_name="Port News",
            topics=("black-sea",),
            score=1.1,
            actors=(),
            first_seen_at=t0 + timedelta(hours=4),
        ),
    ]


def golden_digest() -> Digest:
    cfg = FileChannel(
        kind="file", schedule="immediate", max_entries=3, title="Negotiations monitor"
    )
    failing = [
        FailingFeed(
            "President of Ukraine - News",
            "https://president.example/rss",
            NOW - timedelta(days=2, hours=3),
            12,
            "HTTP 403 Forbidden",
        )
    ]
    digest = build_digest("files", cfg, golden_pending(), failing, NOW - timedelta(days=1), NOW)
    assert digest is not None
    return digest.with_identity(42, "<digest-42.files@localhost>")


def rendered_formats() -> dict[str, str]:
    digest = golden_digest()
    out = {fmt: render(digest, fmt) for fmt in ("md", "html", "json")}
    out["txt"] = render(digest, "text")
    out["atom"] = render_atom("files", digest.title, [digest], limit=10, updated=NOW)
    return out


@pytest.mark.parametrize("ext", ["md", "html", "txt", "json", "atom"])
def test_golden(ext: str) -> None:
    actual = rendered_formats()[ext]
    path = GOLDEN / f"digest.{ext}"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_text(encoding="utf-8")


def test_golden_digest_content() -> None:
    digest = golden_digest()
    assert [s.topic for s in digest.sections] == ["negotiations", "sanctions"]
    first = digest.sections[0].entries[0]
    assert [s.feed_name for s in first.sources] == ["Kyiv Wire", "ТАСС", "Суспільне"]
    assert (
        digest.header.more_count == 1 and digest.more[0].title == "Grain corridor traffic resumes"
    )
    update = next(e for e in digest.entries if e.is_update)
    assert update.new_actors == ("umerov",)


def test_json_output_follows_the_documented_schema() -> None:
    data = json.loads(rendered_formats()["json"])
    assert data["version"] == 1
    assert set(data) == {
        "version",
        "id",
        "message_id",
        "channel",
        "title",
        "created_at",
        "period",
        "header",
        "sections",
        "more",
        "failing_feeds",
        "match_ids",
        "story_marks",
    }
    entry = data["sections"][0]["entries"][0]
    assert {
        "title",
        "link",
        "feed",
        "published",
        "first_seen",
        "topics",
        "actors",
        "terms",
        "snippet",
        "score",
        "sources",
        "other_headlines",
        "is_update",
        "new",
    } <= set(entry)
    doc = (Path(__file__).parent.parent / "docs" / "digest-json.md").read_text(encoding="utf-8")
    for key in data:
        assert f"`{key}`" in doc, f"docs/digest-json.md does not document {key!r}"


def test_atom_is_well_formed_with_stable_ids() -> None:
    digest = golden_digest()
    first = render_atom("files", digest.title, [digest], limit=10, updated=NOW)
    root = ET.fromstring(first.encode())
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert root.find(f"{ATOM}{required}") is not None
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == len(digest.entries)
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == len(ids)
    for e in entries:
        for required in ("id", "title", "updated"):
            assert e.findtext(f"{ATOM}{required}")
    # rewritten with a later digest holding the same matches: every id stays the same
    later = Digest.from_json(
        {**digest.to_json(), "id": 43, "created_at": (NOW + timedelta(hours=1)).isoformat()}
    )
    again = ET.fromstring(
        render_atom("files", digest.title, [later, digest], limit=10, updated=NOW).encode()
    )
    assert [e.findtext(f"{ATOM}id") for e in again.findall(f"{ATOM}entry")] == ids
    capped = ET.fromstring(
        render_atom("files", digest.title, [digest], limit=2, updated=NOW).encode()
    )
    assert len(capped.findall(f"{ATOM}entry")) == 2
