"""The built-in agents: extractive summaries and keyword classification, deterministic and offline."""

from __future__ import annotations

import json

from starling_agents.runners import (
    UNKNOWN_LABEL,
    classify,
    count_tokens,
    run_classifier,
    run_summarizer,
    split_sentences,
    summarize,
)

from .helpers import SAMPLE_TEXT

LABELS = {"positive": ["good", "great"], "negative": ["bad", "awful"], "neutral": ["okay"]}


def test_summary_keeps_the_sentences_in_their_original_order() -> None:
    summary = summarize(SAMPLE_TEXT, 2)
    sentences = split_sentences(SAMPLE_TEXT)
    kept = split_sentences(summary)
    assert len(kept) == 2
    assert [sentences.index(sentence) for sentence in kept] == sorted(sentences.index(s) for s in kept)


def test_summary_is_shorter_than_a_multi_sentence_input() -> None:
    assert len(summarize(SAMPLE_TEXT, 3)) < len(SAMPLE_TEXT)


def test_summary_prefers_sentences_about_the_main_topic() -> None:
    summary = summarize(SAMPLE_TEXT, 2)
    assert "weather" not in summary
    assert "sandwich" not in summary


def test_text_with_no_more_sentences_than_asked_is_kept_whole() -> None:
    assert summarize("One sentence here.  And   another one!", 3) == "One sentence here. And another one!"


def test_summary_is_deterministic() -> None:
    assert summarize(SAMPLE_TEXT, 3) == summarize(SAMPLE_TEXT, 3)


def test_classifier_picks_the_label_with_most_keyword_hits() -> None:
    label, scores = classify("A GOOD day, a great day, one bad moment.", LABELS)
    assert label == "positive"
    assert scores == {"positive": 2, "negative": 1, "neutral": 0}


def test_keywords_match_whole_words_only() -> None:
    assert classify("Goodness, badminton.", LABELS) == (
        UNKNOWN_LABEL,
        {"positive": 0, "negative": 0, "neutral": 0},
    )


def test_a_tie_goes_to_the_first_label_in_config_order() -> None:
    assert classify("good and bad", LABELS)[0] == "positive"
    assert classify("good and bad", {"negative": ["bad"], "positive": ["good"]})[0] == "negative"


def test_classifier_output_is_json_with_label_and_scores() -> None:
    outcome = run_classifier("awful, just awful", LABELS)
    assert json.loads(outcome.output or "") == {
        "label": "negative",
        "scores": {"positive": 0, "negative": 2, "neutral": 0},
    }


def test_token_usage_counts_tokens_read_plus_written() -> None:
    outcome = run_summarizer(SAMPLE_TEXT, 1)
    assert outcome.token_usage == count_tokens(SAMPLE_TEXT) + count_tokens(outcome.output or "")
    assert outcome.error is None
