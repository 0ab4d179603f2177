"""The built-in agents as pure functions: deterministic, no I/O.

`summarize` is extractive: sentences are scored by the frequency of their words in the whole text
(stop words ignored) and the best `max_sentences` are kept in their original order. `classify` counts
each label's keywords (case-insensitive, whole words); the label with most hits wins, ties go to the
label that comes first in the config, and a text with no hit at all is labelled `"unknown"`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNKNOWN_LABEL = "unknown"

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# One string rather than a list of 130 literals; split once at import.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves
    """.split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Outcome:
    """What running an agent produced: an output, or an error that fails the run."""

    output: str | None
    token_usage: int
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def count_tokens(*texts: str) -> int:
    """Whitespace tokens, the unit of a built-in agent's `token_usage`."""
    return sum(len(text.split()) for text in texts)


def split_sentences(text: str) -> list[str]:
    return [" ".join(part.split()) for part in _SENTENCE_END.split(text.strip()) if part.strip()]


def _words(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.lower()) if word not in STOP_WORDS]


def summarize(text: str, max_sentences: int) -> str:
    sentences = split_sentences(text)
    if len(sentences) <= max_sentences:
        return " ".join(sentences)
    frequencies = Counter(_words(text))
    top = max(frequencies.values(), default=1)

    def score(index: int) -> tuple[float, int]:
        words = _words(sentences[index])
        # Normalised by length (square root) so that one long sentence does not win on size alone.
        total = sum(frequencies[word] / top for word in words) / max(1.0, len(words) ** 0.5)
        return (-total, index)  # best first; an earlier sentence wins a tie

    kept = sorted(sorted(range(len(sentences)), key=score)[:max_sentences])
    return " ".join(sentences[index] for index in kept)


def classify(text: str, labels: Mapping[str, Sequence[str]]) -> tuple[str, dict[str, int]]:
    lowered = text.lower()
    scores = {
        label: sum(len(re.findall(rf"\b{re.escape(keyword.lower())}\b", lowered)) for keyword in keywords)
        for label, keywords in labels.items()
    }
    best = max(scores.values(), default=0)
    if best == 0:
        return UNKNOWN_LABEL, scores
    # dicts keep the config's order, so the first label with the best score is the tie-break winner
    return next(label for label, value in scores.items() if value == best), scores


def run_summarizer(text: str, max_sentences: int) -> Outcome:
    output = summarize(text, max_sentences)
    return Outcome(output=output, token_usage=count_tokens(text, output))


def run_classifier(text: str, labels: Mapping[str, Sequence[str]]) -> Outcome:
    label, scores = classify(text, labels)
    output = json.dumps({"label": label, "scores": scores})
    return Outcome(output=output, token_usage=count_tokens(text, output))
