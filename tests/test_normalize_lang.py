"""detect_lang against a table of sentences written for this test (headlines and longer text)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.lang import detect_lang, normalize_lang_tag

ENGLISH = [
    "Talks between Kyiv and Moscow stall over prisoner exchange",
    "Zelensky says the ceasefire proposal is not acceptable",
    "The envoys met in Istanbul for a third round of negotiations on Tuesday.",
    "Putin and Trump spoke by phone about the war in Ukraine",
    "European leaders debate a new sanctions package against Russia",
    "What we know about the Black Sea grain deal",
    "Lavrov: Moscow is ready for talks, but without preconditions",
    "Analysis: why the peace plan has failed so far",
    "Kremlin rejects the idea of a freeze along the front line",
    "A security guarantee for Ukraine would need American support, officials said.",
    "Shelling hits power stations as winter approaches",
    "Witkoff arrives in Moscow for meeting with Putin",
    "NATO ministers gather in Brussels to discuss aid for Kyiv",
    "The talks ended without a joint statement, and both sides blamed each other.",
    "How the war has changed the map of eastern Europe",
    "Prisoner swap brings home 200 soldiers from each side",
]
RUSSIAN = [
    "Переговоры в Стамбуле продолжатся в четверг",
    "Что известно о новом раунде переговоров",
    "Путин и Зеленский могут встретиться летом",
    "Лавров заявил, что Россия готова к диалогу",
    "Это уже третий обмен пленными за месяц",
    "Кремль отверг идею заморозки конфликта по линии фронта",
    "Эксперты считают, что санкции не изменят позицию Москвы",
    "Стороны обсудили вопросы, которые остаются нерешёнными",
    "Делегации встретятся ещё раз после консультаций со столицами",
    "Песков: никаких договорённостей пока нет",
    "Европа обсуждает новый пакет санкций против России",
    "В Женеве прошли консультации по гуманитарным вопросам, которые длились шесть часов.",
    "Уиткофф прилетел в Москву для встречи с Путиным",
    "Объявлено о прекращении огня на время праздников",
    "Мы не видим готовности Киева к компромиссу, сказал он",
    "Эксперты: переговоры зашли в тупик",
]
UKRAINIAN = [
    "Переговори у Стамбулі продовжаться в четвер",
    "Що відомо про новий раунд переговорів",
    "Зеленський заявив, що Україна не визнає окупацію",
    "Це вже третій обмін полоненими за місяць",
    "Делегації зустрілися в Женеві, але спільної заяви не було",
    "Кремль відкинув ідею заморозки конфлікту по лінії фронту",
    "Європа обговорює новий пакет санкцій проти Росії",
    "Сторони обговорили питання, які залишаються невирішеними",
    "Обстріли пошкодили енергетичну інфраструктуру на сході країни",
    "Міністр закордонних справ України провів зустріч з колегами",
    "Віткофф прилетів до Москви для зустрічі з Путіним",
    "Ми не бачимо готовності Москви до компромісу, сказав він",
    "Обмін полоненими: додому повернулися двісті військових",
    "Сьогодні вранці сирени лунали по всій країні",
    # No і, ї, є or ґ at all: the stop words decide.
    "Зеленський заявив, що переговори тривають",
    "Сторони домовилися про обмін, який буде завтра",
]
OTHER = [
    # Bulgarian
    "Преговорите в Истанбул ще продължат в четвъртък, съобщиха от двете страни",
    "България подкрепя новия пакет санкции, който беше приет днес",
    "Министрите обсъдиха въпроса, но няма споразумение",
    # Serbian Cyrillic
    "Преговори у Истанбулу настављају се у четвртак, саопштили су званичници",
    "Делегације су се састале у Женеви, али заједничка изјава није објављена",
    # Belarusian
    "Перамовы ў Стамбуле працягнуцца ў чацвер, паведамілі ўдзельнікі",
    # German
    "Die Verhandlungen in Istanbul werden am Donnerstag fortgesetzt",
    "Der Kreml lehnt einen Waffenstillstand an der Front ab",
    "Die Außenminister der EU beraten über neue Sanktionen gegen Russland",
    # French
    "Les négociations à Istanbul reprendront jeudi, selon les deux délégations",
    "Le Kremlin rejette l'idée d'un gel du conflit sur la ligne de front",
    "Les ministres européens discutent d'un nouveau paquet de sanctions",
    # Spanish / Italian
    "Las negociaciones en Estambul continuarán el jueves según las delegaciones",
    "Il Cremlino respinge l'idea di un cessate il fuoco lungo la linea del fronte",
    "Los ministros europeos debaten un nuevo paquete de sanciones contra Rusia",
]

CASES = (
    [(text, "en") for text in ENGLISH]
    + [(text, "ru") for text in RUSSIAN]
    + [(text, "uk") for text in UKRAINIAN]
    + [(text, "other") for text in OTHER]
)


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_detect_lang_table(text: str, expected: str) -> None:
    assert detect_lang(text) == expected


def test_table_is_large_enough() -> None:
    assert min(len(ENGLISH), len(RUSSIAN), len(UKRAINIAN), len(OTHER)) >= 15


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("Kyiv", "uk", "uk"),
        ("Kyiv", None, "en"),
        ("Стамбул", "uk", "uk"),
        ("Стамбул", "ru", "ru"),
        ("Стамбул", None, "ru"),
        ("Що далі?", "ru", "uk"),
        ("Что дальше?", "uk", "ru"),
        ("", "uk", "uk"),
        ("2025 — 42", None, "other"),
        ("Talks stall: what next for the ceasefire", "ru", "en"),
        ("Zelensky Путин Lavrov Песков", "uk", "uk"),
    ],
)
def test_hint_decides_short_or_mixed_text(text: str, hint: str | None, expected: str) -> None:
    assert detect_lang(text, hint) == expected


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("en-US", "en"),
        ("RU", "ru"),
        ("uk_UA", "uk"),
        ("ua", "uk"),
        ("de-DE", "other"),
        ("", None),
        (None, None),
    ],
)
def test_normalize_lang_tag(tag: str | None, expected: str | None) -> None:
    assert normalize_lang_tag(tag) == expected


_WORDS = st.sampled_from(
    ["the", "of", "and", "it's", "don't", "l'idea", "der", "le", "la", "Kyiv", "talks", "a", "2"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_WORDS, max_size=30), st.sampled_from([None, "en", "ru", "de"]))
def test_ascii_shortcut_agrees_with_general_path(words: list[str], hint: str | None) -> None:
    text = " ".join(words)
    # "…" is neither a letter nor part of a word, but it sends the text down the general path.
    assert detect_lang(text, hint) == detect_lang(text + " …", hint)
