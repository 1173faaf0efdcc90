"""Language of a short news text by script and stop words: "en", "ru", "uk" or "other"."""

from __future__ import annotations

import re

from monitor.types import Lang

#: Only this much text is looked at; a headline and a summary decide well before it.
_SAMPLE_CHARS = 1500
#: Below this many letters a text is too short to overrule a hint.
_SHORT_LETTERS = 24
#: A winner needs this many points and twice the runner-up's.
_MIN_SCORE = 2
#: One stop word is enough to overrule a hint even in a headline.
_DECISIVE_SCORE = 3

_CYRILLIC_RE = re.compile(r"[\u0400-\u04ff]")
_LATIN_RE = re.compile(r"[A-Za-z\u00c0-\u024f]")
_CYRILLIC_WORD_RE = re.compile(r"[\u0400-\u04ff]+(?:['’ʼ][\u0400-\u04ff]+)?")
_LATIN_WORD_RE = re.compile(r"[a-z\u00c0-\u024f]+(?:['’][a-z]+)?")
_LATIN_ACCENTED_RE = re.compile(r"[\u00c0-\u024f]")
_UK_LETTERS_RE = re.compile(r"[іїєґІЇЄҐ]")
_RU_LETTERS_RE = re.compile(r"[ыэёЫЭЁ]|ъ(?=[еёюяЕЁЮЯ])")
#: Letters of other Cyrillic alphabets (Serbian, Macedonian, Belarusian, Kazakh, ...).
_OTHER_CYRILLIC_RE = re.compile(r"[ђјљњћџѓќѕўәғқңөұүһҗӊӣӯЂЈЉЊЋЏЃЌЅЎӘҒҚҢӨҰҮҺ]")
#: Bulgarian's hard sign stands inside words (България, към), Russian's only before е/ё/ю/я.
_BG_HARD_SIGN_RE = re.compile(r"ъ(?![еёюяЕЁЮЯ])")


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


def detect_lang(text: str, hint: str | None = None) -> Lang:
    """Guess the language of `text`; `hint` (a language tag) decides short or mixed texts."""
    sample = text[:_SAMPLE_CHARS]
    hint_lang = normalize_lang_tag(hint)
    cyrillic = len(_CYRILLIC_RE.findall(sample))
    latin = len(_LATIN_RE.findall(sample))
    letters = cyrillic + latin
    if letters == 0:
        return hint_lang or "other"
    short = letters < _SHORT_LETTERS
    if cyrillic >= 2 * latin:
        return _cyrillic_lang(sample, cyrillic, short, hint_lang)
    if latin >= 2 * cyrillic:
        return _latin_lang(sample, short, hint_lang)
    return hint_lang or ("ru" if cyrillic > latin else "en")


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
    uk = len(_UK_LETTERS_RE.findall(sample)) + 3 * _count(words, _UK_WORDS)
    uk += 2 * sum(1 for word in words if "'" in word or "’" in word or "ʼ" in word)
    ru = len(_RU_LETTERS_RE.findall(sample)) + 3 * _count(words, _RU_WORDS)
    bg = 3 * _count(words, _BG_WORDS) + 2 * len(_BG_HARD_SIGN_RE.findall(sample))
    scores: dict[Lang, int] = {"uk": uk, "ru": ru, "other": bg}
    fallback: Lang = "uk" if uk > ru else "ru" if ru >= bg else "other"
    return _decide(scores, short=short, hint=hint, fitting=("ru", "uk", "other"), fallback=fallback)


def _latin_lang(sample: str, short: bool, hint: Lang | None) -> Lang:
    words = _LATIN_WORD_RE.findall(sample.lower())
    english = _count(words, _EN_WORDS)
    other = _count(words, _OTHER_LATIN_WORDS) + len(_LATIN_ACCENTED_RE.findall(sample)) // 2
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
    ranked = sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
    best_lang, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    if best >= _MIN_SCORE and best >= 2 * runner_up and best > runner_up:
        return best_lang
    return None


def _count(words: list[str], vocabulary: frozenset[str]) -> int:
    return sum(1 for word in words if word in vocabulary)
