"""What the service refuses, each with the status and `detail` its client is told."""

from __future__ import annotations

from collections.abc import Sequence

from starling_core.errors import DomainError, RequestValidationError


class AssessmentNotFound(DomainError):
    """Also what anyone but the owner (or, for reads, an administrator) is told: no enumeration."""

    status_code = 404

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"Assessment {assessment_id} not found")
        self.assessment_id = assessment_id


class RatingNotFound(DomainError):
    """A rating exists from submission on."""

    status_code = 404

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"Assessment {assessment_id} has no rating: it has not been submitted")
        self.assessment_id = assessment_id


class AlreadySubmitted(DomainError):
    status_code = 409

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"Assessment {assessment_id} is already submitted; its answers are frozen")
        self.assessment_id = assessment_id


class NoAnswers(DomainError):
    status_code = 409
    detail_text = "No answers found"


class UnknownSkillAreas(RequestValidationError):
    """Skill areas the question bank has no question for: a 422 on each one's place in the body."""

    def __init__(self, unknown: Sequence[tuple[int, str]]) -> None:
        super().__init__(
            [
                {
                    "loc": ["body", "skill_areas", index],
                    "msg": f"Unknown skill area {area!r}",
                    "type": "value_error",
                }
                for index, area in unknown
            ]
        )
        self.unknown = [area for _, area in unknown]


class QuestionNotInAssessment(RequestValidationError):
    def __init__(self, question_id: str) -> None:
        super().__init__(
            [
                {
                    "loc": ["path", "question_id"],
                    "msg": f"Question {question_id} is not in this assessment",
                    "type": "value_error",
                }
            ]
        )
        self.question_id = question_id


class QuestionNotFound(DomainError):
    status_code = 404

    def __init__(self, question_id: str) -> None:
        super().__init__(f"Question {question_id} not found")
        self.question_id = question_id


class QuestionExists(DomainError):
    status_code = 409
    detail_text = "This skill area already has a question with this text"
