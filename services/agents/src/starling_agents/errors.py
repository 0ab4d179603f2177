"""What the agents service refuses, each with its HTTP status and the detail the client reads.

Core's handler answers every `DomainError` with `{"detail": ...}` and its status, so no route maps them.
"""

from __future__ import annotations

from starling_agents.outbound import Refusal
from starling_core.errors import DomainError, RequestValidationError


class AgentNotFound(DomainError):
    status_code = 404

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"Agent {agent_id} not found")


class AgentExists(DomainError):
    status_code = 409

    def __init__(self, agent_id: str) -> None:
        super().__init__(f"Agent {agent_id} already exists")


class RunNotFound(DomainError):
    """An unknown run, or someone else's: run ids are not to be probed."""

    status_code = 404

    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id} not found")


class RunFinished(DomainError):
    status_code = 409

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"Run {run_id} is already {status}")


class InputTooLong(RequestValidationError):
    """An `input_text` over `STARLING_AGENTS_MAX_INPUT_CHARS`: a 422 in pydantic's shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            [
                {
                    "loc": ["body", "input_text"],
                    "msg": f"String should have at most {limit} characters",
                    "type": "string_too_long",
                }
            ]
        )


class MissingFields(RequestValidationError):
    """An upload without its `agent_id` or its `file`."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(
            [{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in names]
        )


class LLMEndpointRefused(RequestValidationError):
    """An `llm` agent whose host is not on the allow-list, or whose key may not go there (outbound.py)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(
            [{"loc": ["body", "llm", "config", refusal.field], "msg": refusal.message, "type": refusal.type}]
        )


class UnsupportedFile(DomainError):
    """An uploaded file that is not UTF-8 text."""

    status_code = 415


class UnsupportedFileType(UnsupportedFile):
    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"Unsupported file type {content_type or 'unknown'!r}: send a text/plain or text/markdown file"
        )


class FileNotUTF8(UnsupportedFile):
    detail_text = "The file is not UTF-8 text"


class FileIsBinary(UnsupportedFile):
    detail_text = "The file is binary (it contains NUL bytes), not text"


class FileTooLong(DomainError):
    status_code = 413

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"The file has {length} characters; the limit is {limit}")
