"""How a rating is computed, on data worked out by hand: per area the mean of its answers and the share of
its questions answered, overall the mean of the areas' (exact) means, each rounded to two decimals last."""

from __future__ import annotations

import pytest

from starling_assessments.errors import NoAnswers
from starling_assessments.service import AreaScore, rate

# (skill areas chosen, answers per area (None: not answered), expected per area
# (rating, confidence, answered, questions), expected overall)
CASES = {
    "one area, every question answered": (
        ["python"],
        {"python": [4, 4, 5, 5]},
        {"python": (4.5, 1.0, 4, 4)},
        4.5,
    ),
    "one area, half its questions answered": (
        ["python"],
        {"python": [3, None, None, 5]},
        {"python": (4.0, 0.5, 2, 4)},
        4.0,
    ),
    "two areas: thirds round to two decimals": (
        ["python", "sql"],
        {"python": [1, 2, 2], "sql": [5, 5, None]},
        # python 5/3; sql 5 with 2 of 3 answered; overall (5/3 + 5) / 2 = 10/3
        {"python": (1.67, 1.0, 3, 3), "sql": (5.0, 0.67, 2, 3)},
        3.33,
    ),
    "an area with no answer has no rating and no say in overall": (
        ["python", "sql", "testing"],
        {"python": [4], "sql": [None, None], "testing": [2, 3]},
        {"python": (4.0, 1.0, 1, 1), "sql": (None, 0.0, 0, 2), "testing": (2.5, 1.0, 2, 2)},
        3.25,
    ),
    "halves round up, not to even": (
        ["testing"],
        {"testing": [1, 2, 2, 2, 2, 2, 3, 3]},  # 17/8 = 2.125
        {"testing": (2.13, 1.0, 8, 8)},
        2.13,
    ),
    "overall is the mean of exact area means, not of rounded ones": (
        ["python", "sql"],
        {"python": [1, 2, 2], "sql": [2]},
        # (5/3 + 2) / 2 = 11/6 = 1.8333: 1.83, where the rounded 1.67 and 2.0 would give 1.835 -> 1.84
        {"python": (1.67, 1.0, 3, 3), "sql": (2.0, 1.0, 1, 1)},
        1.83,
    ),
    "every area at the bottom of the scale": (
        ["python", "sql"],
        {"python": [1, 1], "sql": [1]},
        {"python": (1.0, 1.0, 2, 2), "sql": (1.0, 1.0, 1, 1)},
        1.0,
    ),
    "areas come back in the order chosen, not the order answered": (
        ["testing", "python"],
        {"python": [5], "testing": [1, None]},
        {"testing": (1.0, 0.5, 1, 2), "python": (5.0, 1.0, 1, 1)},
        3.0,
    ),
}


@pytest.mark.parametrize(("areas", "answers", "expected", "overall"), CASES.values(), ids=CASES.keys())
def test_rating_by_hand(
    areas: list[str],
    answers: dict[str, list[int | None]],
    expected: dict[str, tuple[float | None, float, int, int]],
    overall: float,
) -> None:
    flat = [(area, value) for area, values in answers.items() for value in values]

    rating = rate(areas, flat)

    assert rating.areas == tuple(
        AreaScore(skill_area=area, rating=r, confidence=c, answered=a, questions=q)
        for area, (r, c, a, q) in expected.items()
    )
    assert rating.overall == overall


@pytest.mark.parametrize(
    "answers",
    [[], [("python", None)], [("python", None), ("sql", None), ("sql", None)]],
    ids=["no questions", "one unanswered", "none answered in any area"],
)
def test_nothing_answered_is_no_rating(answers: list[tuple[str, int | None]]) -> None:
    with pytest.raises(NoAnswers) as raised:
        rate(["python", "sql"], answers)

    assert raised.value.detail == "No answers found"
