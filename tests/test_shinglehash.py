"""The compiled story shingles (`monitor._shinglehash`) against the Python reference.

The reference is `story_words` followed by numpy's `word_hashes`; the compiled module must
give the same hashes in the same order for every text, or stored `items.story_hashes` would
depend on whether a machine had a C compiler. Skipped, with the reason shown, where the
module was not built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import shingles as story_text
from monitor.shingles import STEM_CHARS, story_shingles, story_words
from monitor.stories import PACKED, packed, shingle_hashes, word_hashes

compiled = pytest.importorskip(
    "monitor._shinglehash",
    reason="monitor._shinglehash is not built (no C compiler at install): the Python path runs",
)

ROOT = Path(__file__).resolve().parent.parent
HASHER = compiled.Hasher(sorted(story_text._STOPWORDS), STEM_CHARS)


def reference(title: str, summary: str) -> bytes:
    """What the Python path stores for an item."""
    [hashes] = word_hashes([story_words(title, summary)])
    return packed(hashes)


def real_texts() -> list[tuple[str, str]]:
    """Titles and summaries of the labelled story set, and the seed op-eds by paragraph."""
    out = []
    for line in (ROOT / "tests/data/stories/items.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            out.append((row["title"], row.get("summary") or ""))
    for path in sorted((ROOT / "corpus").glob("*.txt")):
        paragraphs = [p for p in path.read_text(encoding="utf-8").split("\n\n") if p.strip()]
        out += [(p.split(".")[0], p) for p in paragraphs]
    return out


def test_real_texts_hash_as_the_python_path_does() -> None:
    texts = real_texts()
    assert len(texts) > 200
    taken = [story_shingles(t, s) for t, s in texts]
    assert shingle_hashes(taken) == [reference(t, s) for t, s in texts]
    assert sum(isinstance(t, bytes) for t in taken) == len(texts)  # the module answered


#: ASCII text with the things the tokeniser decides on: case, digits, every kind of
#: separator, stopwords, and words longer than a stem.
ascii_text = st.lists(
    st.sampled_from(
        [
            *"abcdeIKLMNOPxyzZ0189 \t\n\r\x0b\x0c\x00\x1f\x7f'-_.,;:!?&%\"/()[]",
            *("the ", "Said ", "and", " news ", "TALKS", "zelensky", "Ceasefire", "2025 "),
        ]
    ),
    max_size=120,
).map("".join)


@given(ascii_text, ascii_text)
def test_ascii_text_hashes_as_the_python_path_does(title: str, summary: str) -> None:
    assert HASHER.story(title, summary) == reference(title, summary)


@given(st.text(max_size=200), st.text(max_size=200))
def test_any_text_hashes_as_the_python_path_does(title: str, summary: str) -> None:
    """Non-ASCII text goes through `story_words` in Python and only its words are hashed in
    C; ASCII text is tokenised in C."""
    assert shingle_hashes([story_shingles(title, summary)]) == [reference(title, summary)]


@given(st.text(max_size=300))
def test_word_hashes_equal_numpys_for_any_string(text: str) -> None:
    [hashes] = word_hashes([text])
    assert compiled.word_hashes(text) == packed(hashes)


def test_word_hashes_agree_on_control_characters_surrogates_and_long_words() -> None:
    texts = ["ok \ud800x tail", "\x00a\x1fb", "x" * 200 + " " + "Ω" * 70, "", "   ", "a"]
    for text in texts:
        [hashes] = word_hashes([text])
        assert compiled.word_hashes(text) == packed(hashes), text


def test_non_ascii_text_is_left_to_python() -> None:
    assert HASHER.story("Переговоры в Стамбуле", "talks") is None
    assert HASHER.story("talks", "naïve envoys") is None
    assert HASHER.story("", "") == b""


def test_an_item_of_stopwords_only_has_no_shingles() -> None:
    assert HASHER.story("The news, said", "Today: they told us it was the latest update") == b""
    # The longest stopwords, and words one letter longer than they are, which are not.
    longest = max(map(len, story_text._STOPWORDS))
    assert HASHER.story(" ".join(w for w in story_text._STOPWORDS if len(w) == longest), "") == b""
    longer = HASHER.story("Wednesdays according", "yesterdays")
    assert longer is not None
    assert len(np.frombuffer(longer, dtype=PACKED)) == 2  # "wednes", "yester"


def test_a_stem_is_taken_once_across_title_and_summary() -> None:
    taken = np.frombuffer(HASHER.story("Negotiators negotiate", "NEGOTIATIONS!"), dtype=PACKED)
    assert len(taken) == 1


@pytest.mark.parametrize(
    ("stopwords", "stem_chars", "message"),
    [
        (["ok", "naïve"], 6, "ASCII"),
        (["ok"], 0, "stem_chars"),
        (["ok"], 8, "stem_chars"),
    ],
)
def test_a_hasher_refuses_what_it_cannot_honour(
    stopwords: list[str], stem_chars: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compiled.Hasher(stopwords, stem_chars)


def test_story_needs_two_strings() -> None:
    with pytest.raises(TypeError, match="title, summary"):
        HASHER.story("only one")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="title, summary"):
        HASHER.story(b"bytes", "str")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str"):
        compiled.word_hashes(b"bytes")  # type: ignore[arg-type]


def test_without_the_module_workers_send_words_and_storage_hashes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Python path (no C compiler at install) stores the same hashes."""
    texts = real_texts()[:60]
    with_module = shingle_hashes([story_shingles(t, s) for t, s in texts])
    monkeypatch.setattr(story_text, "_HASHER", None)
    taken = [story_shingles(t, s) for t, s in texts]
    assert all(isinstance(t, str) for t in taken)
    assert shingle_hashes(taken) == with_module
