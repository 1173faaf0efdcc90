"""Story words: the text side of story clustering (content words of title + summary).

Kept apart from monitor/stories.py so that the parse workers, which take each item's story
words, do not import numpy (measured with SciPy, which the decision used then: 0.34 s of
CPU and 24 MB in each worker process). Where the optional compiled module was built
(`monitor._shinglehash`), `story_shingles` takes an item's words and hashes them in one C
pass, with the same result as the Python path here and `monitor.stories.word_hashes`.
"""

from __future__ import annotations

import re
import unicodedata

#: Words are cut to this many characters (a crude stemmer: signed/signing, Zelensky/Zelenskyy).
STEM_CHARS = 6

_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    """
    a about above after again against ago all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    either else ever few for from further had has have having he her here hers him his how
    i if in into is it its itself just least less many may me might more most much must my
    near neither no nor not now of off on once one only or other our ours out over own per
    same she should since so some such than that the their theirs them then there these they
    this those through to too under until up upon us very via was we were what when where
    whether which while who whom whose why will with within without would yet you your s t
    said says say saying told tells tell according added adds reported reports report
    new news live latest update updates updated read more full story stories video watch
    monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow
    week weeks day days year years time times first last next two three
    """.split()  # noqa: SIM905
)


class _DropCombining(dict[int, str | None]):
    """`str.translate` table deleting combining marks, filled as characters are met."""

    def __missing__(self, code: int) -> str | None:
        value = None if unicodedata.combining(chr(code)) else chr(code)
        self[code] = value
        return value


_DROP_COMBINING = _DropCombining()


def _fold(text: str) -> str:
    folded = text.casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFKD", folded).translate(_DROP_COMBINING)


#: For ASCII text: letters lower-cased, every other character but digits made a space, so
#: `split()` gives what `_WORD.findall` gives on the casefolded text, several times faster.
_ASCII_WORDS = str.maketrans({c: chr(c).lower() if chr(c).isalnum() else " " for c in range(128)})


def _all_words(text: str) -> list[str]:
    if text.isascii():
        return text.translate(_ASCII_WORDS).split()
    return _WORD.findall(_fold(text))


def content_words(text: str) -> list[str]:
    """Casefolded, accent-free words without punctuation or stopwords, cut to STEM_CHARS."""
    return [w[:STEM_CHARS] for w in _all_words(text) if w not in _STOPWORDS]


def shingles(title: str, summary: str) -> frozenset[str]:
    """The set compared between items: the content words of title and summary."""
    return frozenset(content_words(f"{title}\n{summary}"))


def story_words(title: str, summary: str) -> str:
    """The shingles of an item as one space-separated string, each once: what a worker
    process sends, hashed when the item is saved (`monitor.stories.word_hashes`) and stored
    as `items.story_hashes`."""
    return " ".join(dict.fromkeys(content_words(f"{title}\n{summary}")))


#: The compiled hasher, or None where the module was not built.
_HASHER: _shinglehash.Hasher | None
try:
    from monitor import _shinglehash
except ImportError:  # installed without a C compiler: the Python path
    _HASHER = None
else:
    _HASHER = _shinglehash.Hasher(sorted(_STOPWORDS), STEM_CHARS)


def compiled() -> bool:
    """Whether story shingles are taken by the compiled module."""
    return _HASHER is not None


def story_shingles(title: str, summary: str) -> bytes | str:
    """An item's shingles as a worker sends them: hashed and packed as `items.story_hashes`
    stores them (bytes) where the compiled module is built, else its `story_words` (str),
    hashed in bulk when saved (`monitor.stories.shingle_hashes` reads both).

    The compiled module tokenises ASCII text itself (6 times faster than `story_words` and
    the hashing together, docs/decisions.md); other text is casefolded and stripped of
    accents here, and only its words are hashed in C."""
    if _HASHER is None:
        return story_words(title, summary)
    taken = _HASHER.story(title, summary)
    if taken is None:
        return _shinglehash.word_hashes(story_words(title, summary))
    return taken
