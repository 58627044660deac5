"""The UI's HTTP routes under ``/ui``: sign-in, pages, their htmx fragments, and actions.

Every page is served whole to a browser and as a fragment (only its live part) to htmx,
which polls it to keep the page current without a reload. Reads are computed off the event
loop; actions commit the same replicated commands as the ``/v1`` API. Every POST but the
sign-in needs the session's CSRF token (header ``X-CSRF-Token`` or form field
``csrf_token``), and every action asks the authorizer first.
"""

from __future__ import annotations

import codecs
import functools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from federation.acl.authorizer import Need
from federation.api.acl import require
from federation.errors import FederationError, NotFound, ValidationError
from federation.ids import new_id
from federation.scheduler.periodic import child_id
from federation.specs.job import parse_document, validate_job
from federation.specs.namespace import split_key
from federation.ui import authz, views
from federation.ui.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_TTL_SECONDS,
    Session,
    SessionCodec,
    csrf_ok,
)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 1 << 20
POLL = "every 2s"
# Pages authorize by the session cookie (``viewer``/``acting`` ask the ACL authorizer per
# page and action), not by a bearer header: to the API's route check they are public.
router = APIRouter(prefix="/ui", include_in_schema=False,
                   dependencies=[Depends(require(Need("public")))])


# -- filters for the templates ---------------------------------------------------------------
def _when(value: Any) -> str:
    if not isinstance(value, int | float) or value <= 0:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _ago(value: Any) -> str:
    if not isinstance(value, int | float) or value <= 0:
        return "-"
    delta = max(0.0, time.time() - value)
    if delta < 60:
        return f"{delta:.0f}s ago"
    if delta < 3600:
        return f"{delta / 60:.0f}m ago"
    return f"{delta / 3600:.1f}h ago"


@functools.cache
def _templates() -> Any:
    """The page templates, loaded on the first page served: Jinja2 costs a server's start
    about 0.1 s, and most servers never serve a page."""
    from fastapi.templating import Jinja2Templates

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = _when
    templates.env.filters["ago"] = _ago
    templates.env.globals["urlencode"] = urlencode
    return templates


# -- who is asking ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Viewer:
    session: Session
    principal: authz.Principal
    authorizer: authz.Authorizer

    def may(self, capability: str, namespace: str = "default") -> bool:
        return self.authorizer.may(self.principal, capability, namespace)


class SignInNeeded(Exception):
    pass


class Refused(Exception):
    """403: no valid CSRF token, or the token may not do this."""


def _master(request: Request) -> Any:
    return request.app.state.master


def _codec(request: Request) -> SessionCodec:
    codec = getattr(request.app.state, "ui_sessions", None)
    if codec is None:
        codec = request.app.state.ui_sessions = SessionCodec(_master(request).config.secret)
    return codec


def _authorizer(request: Request) -> authz.Authorizer:
    return authz.authorizer_of(request.app.state, _master(request))


def viewer(request: Request) -> Viewer:
    session = _codec(request).open(request.cookies.get(SESSION_COOKIE), int(time.time()))
    if session is None:
        raise SignInNeeded
    authorizer = _authorizer(request)
    principal = authorizer.authenticate(session.token)
    if principal is None:  # the token was revoked or the server's token changed
        raise SignInNeeded
    if principal.api is not None:  # the /v1 code the UI calls authorizes this caller
        request.state.principal = principal.api
    return Viewer(session, principal, authorizer)


async def form(request: Request) -> dict[str, str]:
    """An urlencoded form body (the UI's own forms), bounded in size."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValidationError(f"the form exceeds {MAX_FORM_BYTES} bytes")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}


async def acting(request: Request, capability: str, namespace: str = "default"
                 ) -> tuple[Viewer, dict[str, str]]:
    """The viewer of a state-changing request, after the CSRF and permission checks."""
    who = viewer(request)
    fields = await form(request)
    presented = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
    if not csrf_ok(who.session, presented):
        raise Refused("missing or wrong CSRF token: reload the page and try again")
    if not who.may(capability, namespace):
        raise Refused(f"this token may not {capability}")
    return who, fields


def _htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(request: Request, who: Viewer | None, template_name: str,
           fragment_name: str | None, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The whole page, or for an htmx poll only its live fragment."""
    name = (fragment_name if fragment_name is not None and _htmx(request)
            else template_name)
    return _templates().TemplateResponse(request, name, {
        "who": who, "csrf": who.session.csrf if who else "", "poll": POLL,
        "path": request.url.path, "authz": authz,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        **context}, status_code=status_code,
        headers=PAGE_HEADERS)


# The browser itself refuses anything a page would load from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def done(request: Request, target: str, message: str) -> Response:
    """After an action: htmx shows the message and refreshes the live part; a plain form
    post is redirected."""
    if _htmx(request):
        return HTMLResponse(f'<p class="flash ok" role="status">{_escape(message)}</p>',
                            headers={"HX-Trigger": "federation-changed"})
    return RedirectResponse(target, status_code=303)


def failed(request: Request, exc: FederationError) -> Response:
    text = f"{exc.field}: {exc.message}" if exc.field else exc.message
    if _htmx(request):
        # htmx swaps only 2xx answers by default; the status stays in a header for tools.
        return HTMLResponse(f'<p class="flash error" role="alert">{_escape(text)}</p>',
                            headers={"X-Federation-Status": str(exc.http_status)})
    return HTMLResponse(f"<p>{_escape(text)}</p>", status_code=exc.http_status)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


# -- sign-in ---------------------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    # Only a local UI path: never an open redirect.
    if value and value.startswith("/ui") and not value.startswith("//"):
        return value
    return "/ui/"


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/", error: str = "") -> Response:
    nonce, cookie = _codec(request).login_nonce(int(time.time()))
    response = render(request, None, "login.html", None, nonce=nonce, next=_safe_next(next),
                      error=error, open_server=_master(request).config.token is None)
    _set_cookie(request, response, LOGIN_COOKIE, cookie, 15 * 60)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request)
    now = int(time.time())
    codec = _codec(request)
    if not codec.check_login_nonce(request.cookies.get(LOGIN_COOKIE), fields.get("nonce"), now):
        return HTMLResponse("<p>The sign-in form expired: reload it and try again.</p>",
                            status_code=403)
    token = fields.get("token", "").strip() or None
    if _authorizer(request).authenticate(token) is None:
        nonce, cookie = codec.login_nonce(now)
        refused = render(request, None, "login.html", None, status_code=401, nonce=nonce,
                         next=_safe_next(fields.get("next")), open_server=False,
                         error="That token is not valid for this cluster.")
        _set_cookie(request, refused, LOGIN_COOKIE, cookie, 15 * 60)
        return refused
    sealed, _ = codec.issue(token, now)
    response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, sealed, SESSION_TTL_SECONDS)
    response.delete_cookie(LOGIN_COOKIE, path="/ui")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = viewer(request)
    fields = await form(request)
    if not csrf_ok(who.session, request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)):
        raise Refused("missing or wrong CSRF token")
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response


def _set_cookie(request: Request, response: Response, name: str, value: str,
                max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/ui", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


# -- pages -----------------------------------------------------------------------------------
@router.get("")
@router.get("/")
async def overview(request: Request) -> Response:
    who = viewer(request)
    master = _master(request)
    try:
        status = master.status()
    except FederationError:
        status = None
    data = await run_in_threadpool(views.overview, master.machine, status)
    return render(request, who, "overview.html", "_overview.html", nav="overview", **data)


def namespace_of_key(job_key: str) -> str:
    """The namespace of a job's state key (``team-b/web``; a bare id is ``default``'s)."""
    return split_key(job_key)[0]


@router.get("/jobs")
async def jobs(request: Request) -> Response:
    who = viewer(request)
    query = views.JobQuery.parse(request.query_params)
    data = await run_in_threadpool(views.jobs_page, _master(request).machine, query)
    return render(request, who, "jobs.html", "_jobs.html", nav="jobs", query=query,
                  types=views.JOB_TYPES, statuses=views.JOB_STATUSES, sorts=views.JOB_SORTS,
                  **data)


@router.get("/jobs/new")
async def new_job(request: Request) -> Response:
    who = viewer(request)
    return render(request, who, "job_new.html", None, nav="jobs", text="", errors=[])


@router.post("/jobs")
async def submit_job(request: Request) -> Response:
    who, fields = await acting(request, authz.SUBMIT_JOB)
    text = fields.get("spec", "")
    try:
        if not text.strip():
            raise ValidationError("the spec is empty", field="spec")
        spec = validate_job(parse_document(text.encode(), content_type=""))
        value = await _master(request).commit(
            {"type": "job.register", "id": f"job:{new_id()}", "spec": spec})
    except FederationError as exc:
        errors = [e for e in (exc.to_dict().get("errors") or [])] or [
            {"field": exc.field, "message": exc.message}]
        return render(request, who, "job_new.html", None, status_code=exc.http_status,
                      nav="jobs", text=text, errors=errors)
    return RedirectResponse(f"/ui/jobs/{quote(value['id'], safe='')}", status_code=303)


@router.get("/jobs/{job_id:path}")
async def job(request: Request, job_id: str) -> Response:
    who = viewer(request)
    data = await run_in_threadpool(views.job_detail, _master(request).machine, job_id,
                                   time.time())
    if data is None:
        return render(request, who, "missing.html", None, status_code=404, nav="jobs",
                      what=f"job {job_id}")
    return render(request, who, "job.html", "_job.html", nav="jobs", job=data)


@router.post("/jobs/{job_id:path}/stop")
async def stop_job(request: Request, job_id: str) -> Response:
    await acting(request, authz.SUBMIT_JOB, namespace_of_key(job_id))
    try:
        value = await _master(request).commit(
            {"type": "job.deregister", "id": f"stop:{job_id}:{new_id()}", "job_id": job_id})
    except FederationError as exc:
        return failed(request, exc)
    message = f"Job {job_id} stopped." if value["changed"] else f"Job {job_id} was already stopped."
    return done(request, f"/ui/jobs/{quote(job_id, safe='')}", message)


@router.post("/jobs/{job_id:path}/start")
async def start_job(request: Request, job_id: str) -> Response:
    """Start a stopped job again: its spec registered anew, as `job run` of it would."""
    await acting(request, authz.SUBMIT_JOB, namespace_of_key(job_id))
    record = _master(request).machine.jobs.get(job_id)
    try:
        if record is None:
            raise NotFound(f"no job {job_id!r}")
        value = await _master(request).commit(
            {"type": "job.register", "id": f"job:{new_id()}", "spec": record["spec"]})
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/jobs/{quote(job_id, safe='')}",
                f"Job {job_id} started again (version {value['version']}).")


@router.post("/jobs/{job_id:path}/scale")
async def scale_job(request: Request, job_id: str) -> Response:
    """Set one group's count: a new job version, as `federation job scale` makes."""
    from federation.api.routes_jobs import scaled_spec

    _, fields = await acting(request, authz.SUBMIT_JOB, namespace_of_key(job_id))
    record = _master(request).machine.jobs.get(job_id)
    try:
        if record is None:
            raise NotFound(f"no job {job_id!r}")
        raw = fields.get("count", "").strip()
        if not raw.isdigit():
            raise ValidationError("count must be a whole number", field="count")
        group = fields.get("group", "")
        spec = scaled_spec(record["spec"], group, int(raw))
        value = await _master(request).commit(
            {"type": "job.register", "id": f"job:{new_id()}", "spec": spec})
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/jobs/{quote(job_id, safe='')}",
                f"Group {group} of {job_id} scaled to {raw} (version {value['version']}).")


@router.post("/jobs/{job_id:path}/revert")
async def revert_job(request: Request, job_id: str) -> Response:
    """Run a kept earlier version again, as `federation job revert` does."""
    _, fields = await acting(request, authz.SUBMIT_JOB, namespace_of_key(job_id))
    try:
        raw = fields.get("version", "").strip()
        if not raw.isdigit() or int(raw) < 1:
            raise ValidationError("version must be a whole number, at least 1", field="version")
        value = await _master(request).commit(
            {"type": "job.revert", "id": f"revert:{job_id}:{new_id()}", "job_id": job_id,
             "version": int(raw)})
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/jobs/{quote(job_id, safe='')}",
                f"Job {job_id} reverted to the spec of version {raw} "
                f"(now version {value['version']}).")


@router.post("/jobs/{job_id:path}/run")
async def run_now(request: Request, job_id: str) -> Response:
    """Run a periodic job now: one child launched as its schedule would launch it."""
    await acting(request, authz.DISPATCH_JOB, namespace_of_key(job_id))
    record = _master(request).machine.jobs.get(job_id)
    try:
        if record is None:
            raise NotFound(f"no job {job_id!r}")
        if not record["spec"].get("schedule"):
            raise ValidationError("only a periodic job can be run now", field="schedule")
        fire = time.time()
        child = {**record["spec"], "id": child_id(job_id, fire), "schedule": None}
        await _master(request).commit({"type": "job.register", "id": f"cron:{child['id']}",
                                       "spec": child, "parent": job_id, "launch_time": fire})
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/jobs/{quote(job_id, safe='')}", f"Launched {child['id']}.")


@router.get("/allocations/{alloc_id}")
async def allocation(request: Request, alloc_id: str) -> Response:
    who = viewer(request)
    data = await run_in_threadpool(views.alloc_detail, _master(request).machine, alloc_id)
    if data is None:
        return render(request, who, "missing.html", None, status_code=404, nav="jobs",
                      what=f"allocation {alloc_id}")
    return render(request, who, "alloc.html", "_alloc.html", nav="jobs", alloc=data)


def _alloc_namespace(request: Request, alloc_id: str) -> str:
    alloc = _master(request).machine.allocations.get(alloc_id)
    return namespace_of_key(str(alloc["job_id"])) if alloc is not None else "default"


@router.post("/allocations/{alloc_id}/restart")
async def restart_allocation(request: Request, alloc_id: str) -> Response:
    """Restart the task in place on its node, as `federation alloc restart` does."""
    from federation.api.routes_alloc_control import restart_on_agent, running_allocation

    await acting(request, authz.ALLOC_LIFECYCLE, _alloc_namespace(request, alloc_id))
    master = _master(request)
    try:
        alloc, node = running_allocation(master.machine, alloc_id)
        await restart_on_agent(master, alloc, node)
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/allocations/{quote(alloc_id, safe='')}",
                f"Allocation {views.short_id(alloc_id)} restarting on {node['name']}.")


@router.post("/allocations/{alloc_id}/stop")
async def stop_allocation(request: Request, alloc_id: str) -> Response:
    await acting(request, authz.ALLOC_LIFECYCLE, _alloc_namespace(request, alloc_id))
    machine = _master(request).machine
    alloc = machine.allocations.get(alloc_id)
    try:
        if alloc is None:
            raise NotFound(f"no allocation {alloc_id!r}")
        if alloc["desired_status"] == "run":
            await _master(request).commit({
                "type": "alloc.stop", "id": f"alloc-stop:{alloc_id}:{new_id()}",
                "alloc_ids": [alloc_id], "reason": "stopped from the web UI"})
    except FederationError as exc:
        return failed(request, exc)
    return done(request, f"/ui/allocations/{quote(alloc_id, safe='')}",
                f"Allocation {views.short_id(alloc_id)} told to stop.")


@router.get("/allocations/{alloc_id}/logs")
async def log_events(request: Request, alloc_id: str, stream: str = "stdout") -> Response:
    """The allocation's output as server-sent events, followed live. Each event's id is the
    byte offset after it, so a reconnecting browser resumes where it stopped."""
    who = viewer(request)
    if not who.may(authz.READ_LOGS):
        raise Refused("this token may not read logs")
    from federation.api.routes_agent import allocation_logs  # the /v1 relay to the node

    last = request.headers.get("last-event-id", "")
    offset = int(last) if last.isdigit() else -65536
    stream = "stderr" if stream == "stderr" else "stdout"

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        try:
            upstream = await allocation_logs(request, alloc_id, stream=stream,
                                             offset=offset, follow=True)
        except FederationError as exc:
            # Not there yet (pending) or the node is away: the browser retries by itself.
            yield _sse(exc.message, event="problem")
            return
        position = int(upstream.headers.get("x-federation-log-offset", max(offset, 0)))
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in upstream.body_iterator:
            data = chunk if isinstance(chunk, bytes) else str(chunk).encode()
            position += len(data)
            text = decoder.decode(data)
            if text:
                yield _sse(text, event_id=str(position))
        yield _sse("", event="end")

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(text: str, event: str | None = None, event_id: str | None = None) -> bytes:
    lines = [f"event: {event}"] if event else []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    flat = text.replace("\r\n", "\n").replace("\r", "\n")
    lines += [f"data: {line}" for line in flat.split("\n")]
    return ("\n".join(lines) + "\n\n").encode()


@router.get("/nodes")
async def nodes(request: Request) -> Response:
    who = viewer(request)
    m = _master(request)
    rows = await run_in_threadpool(views.nodes_view, m.machine, m.liveness.seen())
    return render(request, who, "nodes.html", "_nodes.html", nav="nodes", nodes=rows)


@router.post("/nodes/{node_id}/drain")
@router.post("/nodes/{node_id}/undrain")
async def drain(request: Request, node_id: str) -> Response:
    await acting(request, authz.NODE_WRITE)
    draining = request.url.path.endswith("/drain")
    try:
        node = _master(request).machine.nodes.get(node_id)
        if node is None:
            raise NotFound(f"no node {node_id!r}")
        await _master(request).commit({
            "type": "node.drain", "id": f"drain:{node_id}:{new_id()}", "node_id": node_id,
            "draining": draining, "time": time.time()})
    except FederationError as exc:
        return failed(request, exc)
    verb = "is draining" if draining else "is eligible for work again"
    return done(request, "/ui/nodes", f"Node {node['name']} {verb}.")


@router.get("/pools")
async def pools(request: Request) -> Response:
    who = viewer(request)
    rows = await run_in_threadpool(views.pools_view, _master(request).machine)
    return render(request, who, "pools.html", "_pools.html", nav="pools", pools=rows)


@router.get("/queues")
async def queues(request: Request) -> Response:
    from federation.api.routes_queues import queue_views

    who = viewer(request)
    rows = await run_in_threadpool(queue_views, _master(request).machine)
    return render(request, who, "queues.html", "_queues.html", nav="queues", queues=rows)


# -- wiring ----------------------------------------------------------------------------------
def install(app: FastAPI) -> None:
    """Serve the UI on ``app``: routes, static files, and the sign-in redirect."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, exc: SignInNeeded) -> Response:
        target = "/ui/login?" + urlencode({"next": request.url.path})
        if _htmx(request):
            return Response(status_code=204, headers={"HX-Redirect": target})
        if request.method != "GET":
            return HTMLResponse("<p>Sign in first.</p>", status_code=401)
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return HTMLResponse(f'<p class="flash error" role="alert">{_escape(str(exc))}</p>',
                            status_code=403)
