"""Thin endpoints: parse the input, call the service layer, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from starling_agents.events import RunEvents, final_events, follow, status_event
from starling_agents.models import UNFINISHED
from starling_agents.repository import AgentRepository
from starling_agents.schemas import AgentCreate, AgentOut, AgentSummary, RunForm, RunIn, RunOut, RunsQuery
from starling_agents.service import (
    Actor,
    AgentExists,
    AgentNotFound,
    AgentsService,
    RunFinished,
    RunNotFound,
    RunsService,
)
from starling_core.auth import AGENT_ADMIN, AGENT_READ, AGENT_RUN, current_user, requires_scopes
from starling_core.db import DatabaseUnavailable
from starling_core.errors import RequestValidationError
from starling_core.operations import operation, route
from starling_core.pagination import InvalidCursor, Page
from starling_core.validation import read_json, unstorable, validate

TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown"})
NOT_FOUND_CLOSE_CODE = 4404


@contextmanager
def _errors() -> Iterator[None]:
    """The service's refusals as HTTP errors."""
    try:
        yield
    except (AgentNotFound, RunNotFound) as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except (AgentExists, RunFinished) as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except InvalidCursor as exc:
        error = {"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}
        raise RequestValidationError([error]) from None


@asynccontextmanager
async def _catalogue(request: Request) -> AsyncIterator[AgentsService]:
    """The catalogue on one transaction, committed when the block ends."""
    with _errors():
        async with request.app.state.database.transaction() as session:
            yield AgentsService(AgentRepository(session))


def _runs(conn: HTTPConnection) -> RunsService:
    runs: RunsService = conn.app.state.runs
    return runs


def _actor(conn: HTTPConnection) -> Actor:
    user = current_user(conn)
    return Actor(sub=user.sub, is_admin=AGENT_ADMIN in user.scopes)


# --- the catalogue ---------------------------------------------------------------------------------


@operation(response=list[AgentSummary], errors=[401, 403], scopes=[AGENT_READ], tags=["agents"])
async def list_agents(request: Request) -> list[AgentSummary]:
    """Every agent, by id."""
    async with _catalogue(request) as agents:
        return [AgentSummary.model_validate(agent) for agent in await agents.all()]


@operation(response=AgentOut, errors=[401, 403, 404], scopes=[AGENT_READ], tags=["agents"])
async def get_agent(request: Request) -> AgentOut:
    """One agent, its config included."""
    async with _catalogue(request) as agents:
        return AgentOut.model_validate(await agents.get(request.path_params["agent_id"]))


@operation(
    body=AgentCreate,
    response=AgentOut,
    status_code=201,
    errors=[401, 403, 409, 422],
    scopes=[AGENT_ADMIN],
    tags=["agents"],
)
async def create_agent(request: Request, body: AgentCreate) -> AgentOut:
    """Add an agent; its config is validated by the rules of its kind."""
    async with _catalogue(request) as agents:
        return AgentOut.model_validate(await agents.create(body.root))


@operation(status_code=204, errors=[401, 403, 404], scopes=[AGENT_ADMIN], tags=["agents"])
async def delete_agent(request: Request) -> None:
    """Remove an agent; its past runs stay readable."""
    async with _catalogue(request) as agents:
        await agents.delete(request.path_params["agent_id"])


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
async def run_agent(request: Request) -> RunOut | Response:
    """Run an agent on a JSON `input_text` or an uploaded text `file`: now, or in the background (202)."""
    limit: int = request.app.state.settings.max_input_chars
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        data = await _run_from_form(request, limit)
    else:
        data = validate(RunIn, await read_json(request), location="body")
        if len(data.input_text) > limit:
            raise RequestValidationError(
                [
                    {
                        "loc": ["body", "input_text"],
                        "msg": f"String should have at most {limit} characters",
                        "type": "string_too_long",
                    }
                ]
            )
    with _errors():
        run = await _runs(request).start(_actor(request), data)
    out = RunOut.model_validate(run)
    if data.background:
        location = f"/api/v1/agents/runs/{run.run_id}"
        return JSONResponse(out.model_dump(mode="json"), status_code=202, headers={"Location": location})
    return out


async def _run_from_form(request: Request, limit: int) -> RunIn:
    async with request.form() as form:
        upload = form.get("file")
        fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        missing = [name for name in ("agent_id",) if not fields.get(name)]
        if not isinstance(upload, UploadFile):
            missing.append("file")
        if missing:
            raise RequestValidationError(
                [{"loc": ["body", name], "msg": "Field required", "type": "missing"} for name in missing]
            )
        assert isinstance(upload, UploadFile)
        content_type = (upload.content_type or "").split(";")[0].strip().lower()
        if content_type not in TEXT_TYPES:
            raise HTTPException(
                415,
                detail=f"Unsupported file type {content_type or 'unknown'!r}: "
                "send a text/plain or text/markdown file",
            )
        raw = await upload.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(415, detail="The file is not UTF-8 text") from None
    if "\x00" in text:
        raise HTTPException(415, detail="The file is binary (it contains NUL bytes), not text")
    if len(text) > limit:
        raise HTTPException(413, detail=f"The file has {len(text)} characters; the limit is {limit}")
    return validate(RunIn, {**fields, "input_text": text}, location="body")


@operation(query=RunsQuery, response=Page[RunOut], errors=[401, 403, 422], scopes=[AGENT_READ], tags=["runs"])
async def list_runs(request: Request, query: RunsQuery) -> Page[RunOut]:
    """The caller's runs (everyone's with agent:admin), oldest first, a page at a time."""
    with _errors():
        runs, next_cursor = await _runs(request).list_page(_actor(request), query)
    return Page[RunOut](items=[RunOut.model_validate(run) for run in runs], next_cursor=next_cursor)


@operation(response=RunOut, errors=[401, 403, 404], scopes=[AGENT_READ], tags=["runs"])
async def get_run(request: Request) -> RunOut:
    """One run: the caller's own, or any with agent:admin."""
    with _errors():
        return RunOut.model_validate(await _runs(request).get(_actor(request), request.path_params["run_id"]))


@operation(response=RunOut, errors=[401, 403, 404, 409], scopes=[AGENT_RUN], tags=["runs"])
async def cancel_run(request: Request) -> RunOut:
    """Cancel a queued or running run."""
    with _errors():
        run = await _runs(request).cancel(_actor(request), request.path_params["run_id"])
    return RunOut.model_validate(run)


@requires_scopes(AGENT_READ)
async def run_events(websocket: WebSocket) -> None:
    """Stream a run's events: its status, its output when there is one, and `done` when it ends."""
    run_id = websocket.path_params["run_id"]
    if unstorable(run_id, ("path", "run_id")):
        # No run has such an id (a NUL, say), and the database would refuse even to look for it.
        await websocket.accept()
        await websocket.close(code=NOT_FOUND_CLOSE_CODE, reason="Run not found")
        return
    events: RunEvents = websocket.app.state.run_events
    # Subscribed before the run is read, so an event published in between is not lost.
    with events.subscribe(run_id) as queue:
        try:
            run = await _runs(websocket).get(_actor(websocket), run_id)
        except RunNotFound as exc:
            await websocket.accept()
            await websocket.close(code=NOT_FOUND_CLOSE_CODE, reason=str(exc))
            return
        await websocket.accept()

        async def reread() -> tuple[str, str | None] | None:
            try:
                stored = await _runs(websocket).get(_actor(websocket), run_id)
            except DatabaseUnavailable:
                return None  # read again at the next poll
            return stored.status, stored.output

        try:
            await websocket.send_json(status_event(run.status))
            if run.status not in UNFINISHED:
                for event in final_events(run.status, run.output):
                    await websocket.send_json(event)
            else:
                poll = websocket.app.state.settings.events_poll
                async for event in follow(queue, reread, status=run.status, unfinished=UNFINISHED, poll=poll):
                    await websocket.send_json(event)
            await websocket.close()
        except WebSocketDisconnect:
            return


routes = [
    route("/api/v1/agents", GET=list_agents, POST=create_agent),
    Route("/api/v1/agents/run", run_agent, methods=["POST"]),
    Route("/api/v1/agents/runs", list_runs, methods=["GET"]),
    Route("/api/v1/agents/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/v1/agents/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
    WebSocketRoute("/api/v1/agents/runs/{run_id}/events", run_events),
    route("/api/v1/agents/{agent_id}", GET=get_agent, DELETE=delete_agent),
]
