"""Language of a short news text by script and stop words: "en", "ru", "uk" or "other"."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

from monitor.types import Lang

#: Only this much text is looked at; a headline and a summary decide well before it.
_SAMPLE_CHARS = 1500
#: Below this many letters a text is too short to overrule a hint.
_SHORT_LETTERS = 24
#: A winner needs this many points and twice the runner-up's.
_MIN_SCORE = 2
#: One stop word is enough to overrule a hint even in a headline.
_DECISIVE_SCORE = 3

#: Runs of letters: counting characters run by run is far cheaper than one match per letter.
_CYRILLIC_RUN_RE = re.compile(r"[\u0400-\u04ff]+")
_LATIN_RUN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]+")
_CYRILLIC_WORD_RE = re.compile(r"[\u0400-\u04ff]+(?:['’ʼ][\u0400-\u04ff]+)?")
_LATIN_WORD_RE = re.compile(r"[a-z\u00c0-\u024f]+(?:['’][a-z]+)?")
_LATIN_ACCENTED_RE = re.compile(r"[\u00c0-\u024f]")
_UK_LETTERS = "іїєґІЇЄҐ"
_RU_LETTERS = "ыэёЫЭЁ"
#: Bulgarian's hard sign stands inside words (България, към), Russian's only before е/ё/ю/я.
_HARD_SIGN = "ъ"
_RU_HARD_SIGNS = tuple(_HARD_SIGN + vowel for vowel in "еёюяЕЁЮЯ")
_APOSTROPHES = "'’ʼ"
#: Letters of other Cyrillic alphabets (Serbian, Macedonian, Belarusian, Kazakh, ...).
_OTHER_CYRILLIC_RE = re.compile(r"[ђјљњћџѓќѕўәғқңөұүһҗӊӣӯЂЈЉЊЋЏЃЌЅЎӘҒҚҢӨҰҮҺ]")


def _vocabulary(words: str) -> frozenset[str]:
    return frozenset(words.split())


_UK_WORDS = _vocabulary(
    """
    що це та який яка яке які якого якої від україни україна україні українського
    українські українців також але як ще щодо після буде було був була були його її їх
    він вона вони цей ця ці цього тому або чи коли тільки можна треба мають має бути й
    і є між вже де якщо немає ми ви всі б з зі із зараз сьогодні усі
    року році під понад проти заявив заявила повідомив повідомляє
    """
)
_RU_WORDS = _vocabulary(
    """
    что это который которая которое которые которых от россии россия российской
    российские как он она они его ее её их или только также был была были будет уже
    ещё еще где когда если нет мы вы бы из и этот эта эти этого чтобы сегодня
    теперь здесь году под время против заявил заявила сообщил сообщает
    очень может можно надо
    """
)
_BG_WORDS = _vocabulary(
    """
    че това са към във със като тя тези беше бяха също които който която
    няма има трябва срещу българия българския български днес бъде
    """
)
_EN_WORDS = _vocabulary(
    """
    the of and to in is that for on with as was by at it from are be has have this an
    will not but said says its were after over who which their they he she about new
    more than into against amid would could should been had his her our we you what
    when how why all up out no can may there says talks between while under us
    """
)
_OTHER_LATIN_WORDS = _vocabulary(
    """
    der die und das nicht mit von zu den ist sich des auf für im dem ein eine einen
    wird wurde werden sind auch nach bei aus wie oder gegen über am zum zur dass es wir hat haben
    le la les et des du un une est pour dans que qui pas sur avec au aux ce sont par
    plus elle il ont été entre selon
    el los las y del por con para una es se lo como más pero su sus fue
    il di che per della delle non sono gli nel alla anche
    de het een van niet zijn op ook
    """
)


#: Every stop word of each script: the few words the per-language counts need to look at.
_CYRILLIC_STOP_WORDS = _UK_WORDS | _RU_WORDS | _BG_WORDS
_LATIN_STOP_WORDS = _EN_WORDS | _OTHER_LATIN_WORDS

#: str.translate table for ASCII text: letters lower-cased, every other character a space.
_ASCII_LETTERS_ONLY = {code: " " for code in range(128)} | {
    ord(letter): letter.lower() for letter in string.ascii_letters
}

#: The compiled count of an ASCII text's letters and English and other Latin stop words, or
#: None where the module was not built (`_ascii_lang` then counts them in Python).
_TALLY: _wordscan.WordTally | None
try:
    from monitor import _wordscan
except ImportError:  # installed without a C compiler: the Python path
    _TALLY = None
else:
    _TALLY = _wordscan.WordTally(
        sorted(w for w in _EN_WORDS if w.isascii()),
        sorted(w for w in _OTHER_LATIN_WORDS if w.isascii()),
    )


def detect_lang(text: str, hint: str | None = None) -> Lang:
    """Guess the language of `text`; `hint` (a language tag) decides short or mixed texts."""
    sample = text[:_SAMPLE_CHARS]
    hint_lang = normalize_lang_tag(hint)
    if sample.isascii():
        return _ascii_lang(sample, hint_lang)
    cyrillic = _letter_count(_CYRILLIC_RUN_RE, sample)
    latin = _letter_count(_LATIN_RUN_RE, sample)
    letters = cyrillic + latin
    if letters == 0:
        return hint_lang or "other"
    short = letters < _SHORT_LETTERS
    if cyrillic >= 2 * latin:
        return _cyrillic_lang(sample, cyrillic, short, hint_lang)
    if latin >= 2 * cyrillic:
        return _latin_lang(sample, short, hint_lang)
    return hint_lang or ("ru" if cyrillic > latin else "en")


def _ascii_lang(sample: str, hint: Lang | None) -> Lang:
    """`detect_lang` for ASCII text, which holds no Cyrillic and no accented letters.

    Without an apostrophe (which may join words), the compiled tally counts the letters and
    the stop words in one pass (detection was a third of normalising the bench's items, in
    Python); otherwise, or without the compiled module, one translate gives both the letter
    count and the same words as `_LATIN_WORD_RE` (runs of letters, lower-cased).
    """
    tally = _TALLY.tally(sample) if _TALLY is not None else None
    if tally is not None:
        latin, english, other = tally
        if latin == 0:
            return hint or "other"
        return _latin_verdict(english, other, latin < _SHORT_LETTERS, hint)
    letters_only = sample.translate(_ASCII_LETTERS_ONLY)
    latin = len(sample) - letters_only.count(" ")
    if latin == 0:
        return hint or "other"
    words = _LATIN_WORD_RE.findall(sample.lower()) if "'" in sample else letters_only.split()
    return _latin_decision(words, 0, latin < _SHORT_LETTERS, hint)


def _letter_count(runs: re.Pattern[str], sample: str) -> int:
    return sum(map(len, runs.findall(sample)))


def normalize_lang_tag(tag: str | None) -> Lang | None:
    """Reduce a language tag such as "en-GB" or "uk_UA" to one of our four languages."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-", 1)[0]
    if primary in ("en", "ru", "uk"):
        return primary  # type: ignore[return-value]
    if primary == "ua":
        return "uk"
    return "other" if primary else None


def _cyrillic_lang(sample: str, cyrillic: int, short: bool, hint: Lang | None) -> Lang:
    foreign = len(_OTHER_CYRILLIC_RE.findall(sample))
    if foreign >= 2 and foreign * 100 >= cyrillic:
        return "other"
    words = _CYRILLIC_WORD_RE.findall(sample.lower())
    # A word holds at most one apostrophe, so counting apostrophes counts words with one.
    apostrophe_words = _char_count("".join(words), _APOSTROPHES)
    ru_hard_signs = _char_count(sample, _RU_HARD_SIGNS)
    bg_hard_signs = sample.count(_HARD_SIGN) - ru_hard_signs
    stop = _stop_words(words, _CYRILLIC_STOP_WORDS)
    uk = _char_count(sample, _UK_LETTERS) + 3 * _count(stop, _UK_WORDS) + 2 * apostrophe_words
    ru = _char_count(sample, _RU_LETTERS) + ru_hard_signs + 3 * _count(stop, _RU_WORDS)
    bg = 3 * _count(stop, _BG_WORDS) + 2 * bg_hard_signs
    scores: dict[Lang, int] = {"uk": uk, "ru": ru, "other": bg}
    fallback: Lang = "uk" if uk > ru else "ru" if ru >= bg else "other"
    return _decide(scores, short=short, hint=hint, fitting=("ru", "uk", "other"), fallback=fallback)


def _latin_lang(sample: str, short: bool, hint: Lang | None) -> Lang:
    words = _LATIN_WORD_RE.findall(sample.lower())
    accented = len(_LATIN_ACCENTED_RE.findall(sample))
    return _latin_decision(words, accented, short, hint)


def _latin_decision(words: list[str], accented: int, short: bool, hint: Lang | None) -> Lang:
    stop = _stop_words(words, _LATIN_STOP_WORDS)
    english = _count(stop, _EN_WORDS)
    other = _count(stop, _OTHER_LATIN_WORDS) + accented // 2
    return _latin_verdict(english, other, short, hint)


def _latin_verdict(english: int, other: int, short: bool, hint: Lang | None) -> Lang:
    """English or another Latin-script language, from the stop words of each."""
    scores: dict[Lang, int] = {"en": english, "other": other}
    fallback: Lang = "en" if short or english > other else "other"
    return _decide(scores, short=short, hint=hint, fitting=("en", "other"), fallback=fallback)


def _decide(
    scores: dict[Lang, int],
    *,
    short: bool,
    hint: Lang | None,
    fitting: tuple[Lang, ...],
    fallback: Lang,
) -> Lang:
    """A clear winner, unless the text is short, the evidence thin and a fitting hint given."""
    winner = _clear_winner(scores)
    if winner is not None:
        thin = short and scores[winner] < _DECISIVE_SCORE
        if not (thin and hint in fitting):
            return winner
    return hint or fallback


def _clear_winner(scores: dict[Lang, int]) -> Lang | None:
    ranked = sorted(scores.values(), reverse=True)
    best = ranked[0]
    runner_up = ranked[1] if len(ranked) > 1 else 0
    if best >= _MIN_SCORE and best >= 2 * runner_up and best > runner_up:
        # `best` beats every other score, so exactly one language has it.
        return next(lang for lang, score in scores.items() if score == best)
    return None


def _char_count(text: str, needles: Iterable[str]) -> int:
    """Occurrences in `text` of each needle (none of which can overlap itself), summed."""
    return sum(map(text.count, needles))


def _stop_words(words: list[str], stop_words: frozenset[str]) -> list[str]:
    return list(filter(stop_words.__contains__, words))


def _count(words: list[str], vocabulary: frozenset[str]) -> int:
    return sum(map(vocabulary.__contains__, words))
