"""Thin endpoints: parse the input, call the service layer, shape the answer.

What they use comes from the app's lifespan as each request's typed state (`AgentsState`); what the
services refuse is a `DomainError` (errors.py) that core answers with its status.
"""

from __future__ import annotations

from typing import TypedDict

from pydantic import TypeAdapter
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from starling_agents.errors import (
    FileIsBinary,
    FileNotUTF8,
    FileTooLong,
    InputTooLong,
    MissingFields,
    UnsupportedFileType,
)
from starling_agents.events import RunEvents
from starling_agents.followers import NOT_FOUND_CLOSE_CODE, Followers, authorized, refuse
from starling_agents.schemas import AgentCreate, AgentOut, AgentSummary, RunForm, RunIn, RunOut, RunsQuery
from starling_agents.service import Actor, AgentsService, RunsService
from starling_agents.workers import RunWorkers
from starling_core.auth import Scopes, current_user
from starling_core.db import DatabaseUnavailable
from starling_core.operations import operation, route
from starling_core.pagination import Page
from starling_core.validation import read_json, unstorable, validate

AGENT_RUN = "agent:run"
AGENT_READ = "agent:read"
AGENT_ADMIN = "agent:admin"
SCOPES = Scopes(user=(AGENT_RUN, AGENT_READ), admin=(AGENT_ADMIN,))

TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})


class AgentsState(TypedDict):
    """What the lifespan builds once and every request reads: `request.state["runs"]`."""

    agents: AgentsService
    runs: RunsService
    run_events: RunEvents
    workers: RunWorkers  # the background runs' tasks, started and stopped by the lifespan
    max_input_chars: int  # STARLING_AGENTS_MAX_INPUT_CHARS
    followers: Followers  # the run WebSockets' rate limit, poll and idle timeout


def _actor(conn: HTTPConnection[AgentsState]) -> Actor:
    user = current_user(conn)
    return Actor(sub=user.sub, is_admin=AGENT_ADMIN in user.scopes)


# --- the catalogue ---------------------------------------------------------------------------------


# Reads the rows in one call (AgentSummary takes attributes), where a loop validated them one by one.
_SUMMARIES = TypeAdapter(list[AgentSummary])


@operation(response=list[AgentSummary], errors=[401, 403], scopes=[AGENT_READ], tags=["agents"])
async def list_agents(request: Request[AgentsState]) -> list[AgentSummary]:
    """Every agent, by id."""
    return _SUMMARIES.validate_python(await request.state["agents"].listing())


@operation(response=AgentOut, errors=[401, 403, 404], scopes=[AGENT_READ], tags=["agents"])
async def get_agent(request: Request[AgentsState]) -> AgentOut:
    """One agent, its config included."""
    return AgentOut.model_validate(await request.state["agents"].get(request.path_params["agent_id"]))


@operation(
    body=AgentCreate,
    response=AgentOut,
    status_code=201,
    errors=[401, 403, 409, 422],
    scopes=[AGENT_ADMIN],
    tags=["agents"],
)
async def create_agent(request: Request[AgentsState], body: AgentCreate) -> AgentOut:
    """Add an agent; its config is validated by the rules of its kind."""
    return AgentOut.model_validate(await request.state["agents"].create(body.root))


@operation(status_code=204, errors=[401, 403, 404], scopes=[AGENT_ADMIN], tags=["agents"])
async def delete_agent(request: Request[AgentsState]) -> None:
    """Remove an agent; its past runs stay readable."""
    await request.state["agents"].delete(request.path_params["agent_id"])


# --- runs ------------------------------------------------------------------------------------------


@operation(
    accepts={"application/json": RunIn, "multipart/form-data": RunForm},
    response=RunOut,
    extra_responses={202: RunOut},
    response_headers={202: {"Location": "the queued run, to poll: /api/v1/agents/runs/{run_id}"}},
    errors=[401, 403, 404, 413, 415, 422],
    scopes=[AGENT_RUN],
    tags=["runs"],
)
async def run_agent(request: Request[AgentsState]) -> RunOut | Response:
    """Run an agent on a JSON `input_text` or an uploaded text `file`: now, or in the background (202)."""
    data = await _run_input(request, request.state["max_input_chars"])
    run = await request.state["runs"].start(_actor(request), data)
    out = RunOut.model_validate(run)
    if data.background:
        location = f"/api/v1/agents/runs/{run.run_id}"
        return JSONResponse(out.model_dump(mode="json"), status_code=202, headers={"Location": location})
    return out


async def _run_input(request: Request[AgentsState], limit: int) -> RunIn:
    """The run asked for, as JSON or as an upload, its text at most `limit` characters."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _run_from_form(request, limit)
    data = validate(RunIn, await read_json(request), location="body")
    if len(data.input_text) > limit:
        raise InputTooLong(limit)
    return data


async def _run_from_form(request: Request[AgentsState], limit: int) -> RunIn:
    async with request.form() as form:
        upload = form.get("file")
        fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        missing = [name for name in ("agent_id",) if not fields.get(name)]
        if not isinstance(upload, UploadFile):
            missing.append("file")
        if missing:
            raise MissingFields(missing)
        assert isinstance(upload, UploadFile)
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if content_type not in TEXT_TYPES:
            raise UnsupportedFileType(content_type)
        raw = await upload.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileNotUTF8 from None
    if "\x00" in text:
        raise FileIsBinary
    if len(text) > limit:
        raise FileTooLong(len(text), limit)
    return validate(RunIn, {**fields, "input_text": text}, location="body")


@operation(query=RunsQuery, response=Page[RunOut], errors=[401, 403, 422], scopes=[AGENT_READ], tags=["runs"])
async def list_runs(request: Request[AgentsState], query: RunsQuery) -> Page[RunOut]:
    """The caller's runs (everyone's with agent:admin), oldest first, a page at a time."""
    runs, next_cursor = await request.state["runs"].list_page(_actor(request), query)
    return Page[RunOut](items=[RunOut.model_validate(run) for run in runs], next_cursor=next_cursor)


@operation(response=RunOut, errors=[401, 403, 404], scopes=[AGENT_READ], tags=["runs"])
async def get_run(request: Request[AgentsState]) -> RunOut:
    """One run: the caller's own, or any with agent:admin."""
    run = await request.state["runs"].get(_actor(request), request.path_params["run_id"])
    return RunOut.model_validate(run)


@operation(response=RunOut, errors=[401, 403, 404, 409], scopes=[AGENT_RUN], tags=["runs"])
async def cancel_run(request: Request[AgentsState]) -> RunOut:
    """Cancel a queued or running run."""
    run = await request.state["runs"].cancel(_actor(request), request.path_params["run_id"])
    return RunOut.model_validate(run)


async def run_events(websocket: WebSocket[AgentsState]) -> None:
    """Stream a run's events: its status, its output when there is one, and `done` when it ends."""
    followers = websocket.state["followers"]
    if not (await followers.admit(websocket) and await authorized(websocket, [AGENT_READ])):
        return
    run_id = websocket.path_params["run_id"]
    if unstorable(run_id, ("path", "run_id")):
        # No run has such an id (a NUL, say), and the database would refuse even to look for it.
        await refuse(websocket, NOT_FOUND_CLOSE_CODE, "Run not found")
        return
    runs, actor = websocket.state["runs"], _actor(websocket)
    # Subscribed before the run is read, so an event published in between is not lost.
    with websocket.state["run_events"].subscribe(run_id) as queue:
        run = await runs.find(actor, run_id)
        if run is None:
            await refuse(websocket, NOT_FOUND_CLOSE_CODE, f"Run {run_id} not found")
            return

        async def reread() -> tuple[str, str | None] | None:
            try:
                stored = await runs.get(actor, run_id)
            except DatabaseUnavailable:
                return None  # read again at the next poll
            return stored.status, stored.output

        await followers.follow(websocket, run, queue, reread)


routes = [
    route("/api/v1/agents", GET=list_agents, POST=create_agent),
    Route("/api/v1/agents/run", run_agent, methods=["POST"]),
    Route("/api/v1/agents/runs", list_runs, methods=["GET"]),
    Route("/api/v1/agents/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/v1/agents/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    WebSocketRoute("/api/v1/agents/runs/{run_id}/events", run_events),
    route("/api/v1/agents/{agent_id}", GET=get_agent, DELETE=delete_agent),
]
