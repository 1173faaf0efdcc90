"""Loading spaCy pipelines by name, with a blank English fallback instead of a crash or download."""

from __future__ import annotations

import functools

import spacy
from spacy.language import Language

#: Components a blank fallback pipeline gets, so documents still have sentences.
_FALLBACK_PIPES = ("sentencizer",)


def missing_model_warning(model_name: str) -> str:
    """The text shown when a configured spaCy model cannot be loaded."""
    return (
        f"spaCy model {model_name!r} is not installed; seeding falls back to noun phrases "
        "and capitalised spans without entity types. "
        f"Install it with: pip install {model_name.replace('_', '-')} "
        "(or set matching.spacy_model to an installed pipeline such as en_core_web_sm)"
    )


@functools.cache
def load_pipeline(model_name: str) -> tuple[Language, str | None]:
    """The named pipeline and no warning, or a blank English pipeline and a warning text.

    Never downloads anything: only packages already installed (or a local path) are loaded.
    Pipelines are cached per name, since loading one takes about a second.
    """
    try:
        return spacy.load(model_name), None
    except (OSError, ImportError, ValueError):
        return blank_pipeline(), missing_model_warning(model_name)


def blank_pipeline() -> Language:
    """An English tokenizer with sentence boundaries and no statistical components."""
    nlp = spacy.blank("en")
    for pipe in _FALLBACK_PIPES:
        nlp.add_pipe(pipe)
    return nlp


def has_entities(nlp: Language) -> bool:
    """Whether the pipeline recognises named entities."""
    return "ner" in nlp.pipe_names


def has_parser(nlp: Language) -> bool:
    """Whether the pipeline parses dependencies (needed for noun chunks)."""
    return "parser" in nlp.pipe_names
