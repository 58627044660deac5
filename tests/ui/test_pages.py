"""The web UI against a real server: every page needs a session, serves a fragment to htmx,
links only to this server; every action needs the CSRF token and the permission; a read-only
token sees no action."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import httpx
import pytest
from fastapi.testclient import TestClient

from federation.api.app import create_app
from federation.specs.job import validate_job
from federation.ui import authz
from federation.ui.session import SESSION_TTL_SECONDS, SessionCodec
from tests import placing
from tests.harness import SECRET
from tests.ui.conftest import commit, csrf_of, sign_in

PAGES = ["/ui/", "/ui/jobs", "/ui/jobs/new", "/ui/jobs/web", "/ui/nodes", "/ui/pools",
         "/ui/queues"]
LIVE_PAGES = ["/ui/", "/ui/jobs", "/ui/jobs/web", "/ui/nodes", "/ui/pools", "/ui/queues"]


def spec(job_id: str, count: int = 1, **extra) -> dict:
    return validate_job({
        "id": job_id, "type": extra.pop("type", "service"),
        "groups": [{"name": "main", "count": count, "resources": {"cpu": 100, "memory": 64},
                    "task": {"driver": "exec", "command": ["sleep", "60"]},
                    **extra.pop("group", {})}],
        **extra})


@pytest.fixture(scope="module")
def populated(master):
    """A node, a service with one allocation, a periodic job and a gang that cannot fit."""
    node = commit(master, {"type": "node.register", "node": {
        "id": "n1", "name": "rack1-a", "token_hash": "x", "pool": "default",
        "provider": "onprem", "zone": "r1",
        "capacity": {"cpu_milli": 4000, "memory_mib": 4096, "gpu": 0}}})
    commit(master, {"type": "job.register", "spec": spec("web")})
    commit(master, {"type": "job.register", "spec": spec("nightly", type="batch",
                                                              schedule="0 2 * * *")})
    commit(master, {"type": "job.register", "spec": spec(
        "train", count=64, type="batch", group={"gang": True})})
    alloc_id = "0123456789abcdef0000000000000042"
    placing.place(lambda command: commit(master, command), [{
        "id": alloc_id, "job_id": "web", "group": "main", "index": 0, "node_id": node["id"],
        "client_status": "running", "resources": {"cpu_milli": 100, "memory_mib": 64}}])
    return {"node": node["id"], "alloc": alloc_id}


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_to_sign_in(anonymous, populated, path):
    answer = anonymous.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login?next=")


def test_every_page_is_served_to_a_signed_in_browser(browser, populated):
    for path in PAGES + [f"/ui/allocations/{populated['alloc']}"]:
        answer = browser.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert answer.text.lstrip().startswith("<!doctype html>")
        assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_htmx_polls_get_only_the_live_fragment(browser, populated):
    for path in LIVE_PAGES + [f"/ui/allocations/{populated['alloc']}"]:
        answer = browser.get(path, headers={"HX-Request": "true"})
        assert answer.status_code == 200
        assert answer.text.lstrip().startswith('<div id="live"'), path
        assert "<html" not in answer.text and "<nav>" not in answer.text


def test_an_htmx_poll_after_the_session_expired_is_sent_to_sign_in(anonymous, populated):
    answer = anonymous.get("/ui/jobs", headers={"HX-Request": "true"})
    assert answer.headers["hx-redirect"].startswith("/ui/login")


class _Links(HTMLParser):
    ATTRIBUTES = ("src", "href", "action", "hx-get", "hx-post", "data-log-url")

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in self.ATTRIBUTES and v is not None]


def test_every_src_and_href_on_every_page_is_local(browser, anonymous, populated):
    pages = [browser.get(p).text for p in PAGES + [f"/ui/allocations/{populated['alloc']}"]]
    pages.append(anonymous.get("/ui/login").text)
    for page in pages:
        parser = _Links()
        parser.feed(page)
        assert parser.links
        for link in parser.links:
            # A path on this server, or inline data (the empty favicon): nothing fetched
            # from elsewhere.
            assert (link.startswith("/") and not link.startswith("//")) or link == "data:,", link
    for asset in ("/ui/static/htmx.min.js", "/ui/static/pico.min.css", "/ui/static/ui.css",
                  "/ui/static/ui.js"):
        text = anonymous.get(asset).text
        assert "@import" not in text and "//cdn" not in text and "fonts.googleapis" not in text


def test_the_vendored_files_keep_their_licence_headers(anonymous):
    assert "0BSD" in anonymous.get("/ui/static/htmx.min.js").text[:200]
    assert "Licensed under MIT" in anonymous.get("/ui/static/pico.min.css").text[:200]


def test_the_session_cookie_is_httponly_strict_and_expires(anonymous):
    answer = sign_in(anonymous)
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    codec = SessionCodec(SECRET)
    sealed = answer.cookies["federation_session"]
    now = int(time.time())
    assert codec.open(sealed, now) is not None
    assert codec.open(sealed, now + SESSION_TTL_SECONDS + 5) is None
    assert codec.open(sealed[:-4] + "AAAA", now) is None


def test_a_wrong_token_is_refused_and_a_forged_sign_in_form_too(anonymous):
    assert sign_in(anonymous, "not-the-token").status_code == 401
    assert "federation_session" not in anonymous.cookies
    forged = anonymous.post("/ui/login", data={"nonce": "guess", "token": "x"})
    assert forged.status_code == 403


def test_the_token_in_the_cookie_is_not_readable(anonymous):
    answer = sign_in(anonymous)
    from tests.ui.conftest import API_TOKEN

    assert API_TOKEN not in answer.cookies["federation_session"]


ACTIONS = [
    ("/ui/jobs/web/stop", {}),
    ("/ui/jobs/web/start", {}),
    ("/ui/jobs/nightly/run", {}),
    ("/ui/jobs/web/revert", {"version": "1"}),
    ("/ui/nodes/n1/drain", {}),
    ("/ui/nodes/n1/undrain", {}),
    ("/ui/allocations/0123456789abcdef0000000000000042/stop", {}),
    ("/ui/jobs", {"spec": "id: x"}),
    ("/ui/logout", {}),
]
UI_COMMAND_TYPES = {"job.register", "job.deregister", "job.revert", "alloc.stop", "node.drain"}


@pytest.fixture
def ui_commits(master, monkeypatch) -> list[dict]:
    """The commands committed through the master while a test runs, apart from the leader's
    own loops (which keep scheduling in the background and may commit at any moment)."""
    seen: list[dict] = []
    commit = master.commit

    async def recording(command):
        seen.append(command)
        return await commit(command)

    monkeypatch.setattr(master, "commit", recording)
    return seen


@pytest.mark.parametrize("path,data", ACTIONS)
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        browser, master, populated, ui_commits, path, data):
    assert browser.post(path, data=data).status_code == 403
    assert browser.post(path, data={**data, "csrf_token": "wrong"}).status_code == 403
    assert browser.post(path, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert [c for c in ui_commits if c["type"] in UI_COMMAND_TYPES] == []


def test_actions_with_the_csrf_token_change_the_state(browser, master, populated):
    csrf = csrf_of(browser.get("/ui/jobs").text)
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    answer = browser.post("/ui/jobs/web/stop", headers=htmx)
    assert "stopped" in answer.text and answer.headers["hx-trigger"] == "federation-changed"
    assert master.machine.jobs["web"]["stopped"]
    assert "already stopped" in browser.post("/ui/jobs/web/stop", headers=htmx).text
    browser.post("/ui/jobs/web/start", headers=htmx)
    assert not master.machine.jobs["web"]["stopped"]
    browser.post("/ui/nodes/n1/drain", headers=htmx)
    assert master.machine.nodes["n1"]["draining"]
    browser.post("/ui/nodes/n1/undrain", headers=htmx)
    assert not master.machine.nodes["n1"]["draining"]
    browser.post(f"/ui/allocations/{populated['alloc']}/stop", headers=htmx)
    assert master.machine.allocations[populated["alloc"]]["desired_status"] == "stop"
    browser.post("/ui/jobs/nightly/run", headers=htmx)
    assert any(j.get("parent") == "nightly" for j in master.machine.jobs.values())


def test_submitting_a_spec_from_the_form_creates_the_job(browser, master):
    csrf = csrf_of(browser.get("/ui/jobs/new").text)
    text = ("id: from-ui\ntype: batch\ngroups:\n  - name: main\n    count: 1\n"
            "    resources: {cpu: 100, memory: 64}\n"
            "    task: {driver: exec, command: [echo, hi]}\n")
    answer = browser.post("/ui/jobs", data={"spec": text, "csrf_token": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/jobs/from-ui"
    assert master.machine.jobs["from-ui"]["spec"]["groups"][0]["count"] == 1


def test_a_bad_spec_is_shown_back_with_its_error_and_nothing_is_created(browser, master):
    csrf = csrf_of(browser.get("/ui/jobs/new").text)
    text = "id: bad\ntype: batch\ngroups: []\n"
    answer = browser.post("/ui/jobs", data={"spec": text, "csrf_token": csrf})
    assert answer.status_code == 400
    assert 'id="spec-errors"' in answer.text and "groups" in answer.text
    assert "id: bad" in answer.text  # the text is kept for fixing
    assert "bad" not in master.machine.jobs


def test_the_job_page_explains_pending_work_cron_runs_and_gangs(browser, master, populated):
    commit(master, {"type": "job.blocked", "job_id": "train", "unplaced": {
        "main": {"explanation": "64 of 64 not placed: 1 node has too little cpu",
                 "unplaced": 64}}})
    train = browser.get("/ui/jobs/train").text
    assert 'id="why-pending"' in train and "too little cpu" in train
    assert "waiting: nothing placed until all 64 fit" in train
    nightly = browser.get("/ui/jobs/nightly").text
    assert "Next runs" in nightly and "02:00:00" in nightly and 'id="run-now"' in nightly
    web = browser.get("/ui/jobs/web").text
    assert "rack1-a" in web and "0000000000000042"[-8:] in web  # node name and short id


class ReadOnly(authz.TokenAuthorizer):
    """A token that may read jobs and logs only (what an ACL policy would grant)."""

    def authenticate(self, token):
        principal = super().authenticate(token)
        return principal and authz.Principal(
            "reader", frozenset({authz.READ_JOB, authz.READ_LOGS}))


def test_a_read_only_token_sees_no_action_and_its_posts_are_refused(master, populated):
    app = create_app(master)
    app.state.authorizer = ReadOnly(master.config.token)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        answer = sign_in(client)  # type: ignore[arg-type]
        assert answer.status_code == 303
        pages = {p: client.get(p).text for p in
                 ["/ui/jobs", "/ui/jobs/web", "/ui/jobs/nightly", "/ui/nodes",
                  f"/ui/allocations/{populated['alloc']}"]}
        for path, page in pages.items():
            assert "hx-post" not in page, path
            assert 'id="new-job"' not in page
        csrf = csrf_of(pages["/ui/jobs"])
        before = master.machine.index
        for path, data in ACTIONS[:-1]:
            refused = client.post(path, data={**data, "csrf_token": csrf})
            assert refused.status_code == 403, path
        assert master.machine.index == before


def test_the_management_token_sees_the_actions(browser, populated):
    assert 'id="stop-job"' in browser.get("/ui/jobs/web").text
    assert "/drain" in browser.get("/ui/nodes").text
    assert 'id="new-job"' in browser.get("/ui/jobs").text


def test_the_jobs_list_filters_sorts_and_pages_on_the_server(browser, master, populated):
    for i in range(30):
        commit(master, {"type": "job.register", "spec": spec(
            f"batch-{i:02d}", type="batch", priority=i, queue="q1" if i % 2 else "q2")})
    first = browser.get("/ui/jobs", params={"type": "batch", "queue": "q1",
                                            "sort": "-priority", "per_page": 25})
    rows = first.text.count("<tr data-job=")
    assert rows == 15
    assert first.text.index("batch-29") < first.text.index("batch-27")
    paged = browser.get("/ui/jobs", params={"q": "batch-", "page": 2}).text
    assert paged.count("<tr data-job=") == 30 - 25 and 'rel="prev"' in paged
    commit(master, {"type": "job.register", "spec": spec("live")})
    placing.place(lambda command: commit(master, command), [{
        "id": "0123456789abcdef0000000000000077", "job_id": "live", "group": "main",
        "index": 0, "node_id": populated["node"], "client_status": "running",
        "resources": {"cpu_milli": 100, "memory_mib": 64}}])
    running = browser.get("/ui/jobs", params={"status": "running"}).text
    assert 'data-job="live"' in running and "batch-" not in running
    assert browser.get("/ui/jobs", params={"page": "x", "sort": "evil"}).status_code == 200


def test_unknown_jobs_and_allocations_are_a_404_page(browser):
    assert browser.get("/ui/jobs/nope").status_code == 404
    assert browser.get("/ui/allocations/nope").status_code == 404


def test_sign_out_ends_the_session(browser):
    csrf = csrf_of(browser.get("/ui/jobs").text)
    assert browser.post("/ui/logout", data={"csrf_token": csrf}).status_code == 303
    assert browser.get("/ui/jobs").status_code == 303


def test_the_ui_does_not_open_the_api(master, populated):
    """A UI session cookie is not an API credential."""
    with httpx.Client(base_url=f"http://{master.config.http}") as client:
        sign_in(client)
        assert client.get("/v1/jobs").status_code == 401


def test_a_group_is_scaled_from_the_job_page(browser, master, populated):
    page = browser.get("/ui/jobs/web").text
    assert 'hx-post="/ui/jobs/web/scale"' in page
    csrf = csrf_of(page)
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    answer = browser.post("/ui/jobs/web/scale", data={"group": "main", "count": "3"},
                          headers=htmx)
    assert "scaled to 3" in answer.text
    assert master.machine.jobs["web"]["spec"]["groups"][0]["count"] == 3
    bad = browser.post("/ui/jobs/web/scale", data={"group": "nope", "count": "2"},
                       headers=htmx)
    assert "no group 'nope'" in bad.text and bad.headers["x-federation-status"] == "404"
    assert browser.post("/ui/jobs/web/scale", data={"group": "main", "count": "1"}
                        ).status_code == 403  # no CSRF token


def test_the_job_page_lists_its_versions_and_reverts_to_one(browser, master, populated):
    base = spec("versioned")
    commit(master, {"type": "job.register", "spec": base})
    commit(master, {"type": "job.register", "spec": {
        **base, "groups": [{**base["groups"][0], "count": 3}]}})
    page = browser.get("/ui/jobs/versioned").text
    assert 'data-version="2"' in page and 'data-version="1"' in page
    assert "groups[0].count" in page and "Revert to this" in page
    csrf = csrf_of(page)
    htmx = {"HX-Request": "true", "X-CSRF-Token": csrf}
    answer = browser.post("/ui/jobs/versioned/revert", data={"version": "1"}, headers=htmx)
    assert "now version 3" in answer.text
    assert master.machine.jobs["versioned"]["spec"]["groups"][0]["count"] == \
        base["groups"][0]["count"]
    refused = browser.post("/ui/jobs/versioned/revert", data={"version": "9"}, headers=htmx)
    assert refused.headers["x-federation-status"] == "404" and "version: " in refused.text


def test_the_jobs_list_filters_by_namespace_and_namespaced_jobs_have_pages(
        browser, master, populated):
    commit(master, {"type": "job.register", "spec": {
        **spec("api"), "id": "team-b/api", "namespace": "team-b"}})
    everything = browser.get("/ui/jobs", params={"per_page": 100}).text
    assert 'data-job="team-b/api"' in everything and 'data-job="web"' in everything
    team = browser.get("/ui/jobs", params={"namespace": "team-b"}).text
    assert team.count("<tr data-job=") == 1 and 'data-job="team-b/api"' in team
    assert '<option value="team-b" selected>' in team
    default = browser.get("/ui/jobs", params={"namespace": "default", "per_page": 100}).text
    assert 'data-job="team-b/api"' not in default and 'data-job="web"' in default
    page = browser.get("/ui/jobs/team-b/api")
    assert page.status_code == 200 and 'id="stop-job"' in page.text
    csrf = csrf_of(page.text)
    stopped = browser.post("/ui/jobs/team-b/api/stop",
                           headers={"HX-Request": "true", "X-CSRF-Token": csrf})
    assert "stopped" in stopped.text and master.machine.jobs["team-b/api"]["stopped"]
