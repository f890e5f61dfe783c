"""The web app without a browser: sessions, cookie flags, CSRF, object-level 404s, headers.

One demo store per module (building it is the slow part); each test uses its own client,
so its own cookies, and names anything it creates uniquely.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from commonground import bootstrap
from commonground.api.app import create_app
from commonground.demo import build_demo
from commonground.services import agreements as agreement_svc
from commonground.services import audit as audit_svc
from commonground.services import parties as party_svc
from commonground.web.app import create_web, mount_web
from commonground.web.charts import bar_chart
from commonground.web.sessions import SessionStore

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, store_database) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("web") / "home"
    deps = bootstrap.build(bootstrap.Settings(home, store_database(home)))
    report = build_demo(deps, reset=True)
    party_svc.add_party(deps, "outsider")
    tokens = dict(report["tokens"])
    tokens["outsider"] = party_svc.create_token(deps, "outsider")[1]
    tokens["alice"] = party_svc.create_token(deps, "alice")[1]
    app = mount_web(create_app(deps), deps)
    yield {"deps": deps, "app": app, "tokens": tokens, "agreement": report["agreement"]}
    deps.store.dispose()


def client(store: dict[str, Any], https: bool = False) -> TestClient:
    return TestClient(store["app"], base_url="https://testserver" if https else "http://testserver")


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "page has no CSRF field"
    return found.group(1)


def log_in(c: TestClient, token: str) -> str:
    """Log in through the form; returns the session's CSRF token from the first page."""
    form = c.get("/web/login")
    response = c.post("/web/login", data={"csrf_token": csrf_of(form.text), "token": token}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(c.get("/web/datasets").text)


def post_paths(routes) -> list[str]:
    """Every POST path of an app, whether FastAPI keeps included routers flat or nested."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute) and "POST" in route.methods:
            found.append(route.path)
        elif hasattr(route, "original_router"):
            found += post_paths(route.original_router.routes)
    return found


def set_cookies(response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


@pytest.mark.parametrize("https", [False, True])
def test_session_cookie_flags(store, https):
    c = client(store, https)
    form = c.get("/web/login")
    login_cookie = set_cookies(form)["cg_login_csrf"]
    response = c.post("/web/login", data={"csrf_token": csrf_of(form.text), "token": store["tokens"]["retailer"]},
                      follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/web/datasets"
    cookie = set_cookies(response)["cg_session"]
    for flags in (cookie, login_cookie):
        assert "HttpOnly" in flags and "SameSite=strict" in flags and "Path=/web" in flags
        assert ("Secure" in flags) is https
    assert store["tokens"]["retailer"] not in cookie  # the cookie is a session id, never the API token


def test_login_needs_its_csrf_cookie_and_a_good_token(store):
    c = client(store)
    form = c.get("/web/login")
    token = csrf_of(form.text)
    no_field = c.post("/web/login", data={"token": store["tokens"]["retailer"]}, follow_redirects=False)
    assert no_field.status_code == 403 and "cg_session" not in set_cookies(no_field)
    wrong = c.post("/web/login", data={"csrf_token": token + "x", "token": store["tokens"]["retailer"]},
                   follow_redirects=False)
    assert wrong.status_code == 403 and "cg_session" not in set_cookies(wrong)
    bad = c.post("/web/login", data={"csrf_token": token, "token": "cg_forged"}, follow_redirects=False)
    assert bad.status_code == 401 and "not valid" in bad.text and "cg_session" not in set_cookies(bad)
    alice = c.post("/web/login", data={"csrf_token": token, "token": store["tokens"]["alice"]}, follow_redirects=False)
    assert alice.status_code == 303 and alice.headers["location"] == "/web/me/data"  # individuals have their pages


def test_pages_need_a_session(store):
    c = client(store)
    for path in ("/web/datasets", "/web/agreements", "/web/query", "/web/activity", "/web/ledger",
                 f"/web/agreements/{store['agreement']}"):
        response = c.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/web/login", path
    assert c.get("/", follow_redirects=False).headers["location"] == "/web/"


def test_every_post_route_rejects_missing_or_wrong_csrf_and_changes_nothing(store):
    deps = store["deps"]
    proposed = agreement_svc.propose(deps, "retailer", {**agreement_svc.show(deps, "retailer", store["agreement"]).terms.to_dict(),
                                                        "name": "csrf-probe"})
    c = client(store)
    good = log_in(c, store["tokens"]["brand"])
    web_app = next(r.app for r in store["app"].routes if getattr(r, "path", "") == "/web")
    posts = [path for path in post_paths(web_app.routes) if path != "/login"]
    assert {"/logout", "/agreements/new", "/agreements/from-template", "/query",
            "/agreements/{agreement_id}/accept", "/agreements/{agreement_id}/revoke",
            "/signup", "/me/consents", "/me/claim", "/me/offers/{offer_id}/decision", "/me/corrections",
            "/me/erasure", "/requests/{request_id}/answer"} <= set(posts)
    size = audit_svc.signed_head(deps).tree_size
    for path in posts:
        url = "/web" + path.replace("{agreement_id}", proposed.id)
        for data in ({}, {"csrf_token": "wrong"}, {"csrf_token": good + "x"}):
            response = c.post(url, data={**data, "sql": "SELECT 1", "purpose": "analytics.reporting",
                                         "template": "retail-aggregate", "dataset": "retailer.customers"},
                              follow_redirects=False)
            assert response.status_code == 403, (url, data, response.status_code)
            assert "Form expired" in response.text
    assert audit_svc.signed_head(deps).tree_size == size  # nothing was recorded
    assert agreement_svc.show(deps, "brand", proposed.id).status.value == "proposed"
    assert c.get("/web/datasets", follow_redirects=False).status_code == 200  # logout was refused too
    accepted = c.post(f"/web/agreements/{proposed.id}/accept", data={"csrf_token": good}, follow_redirects=False)
    assert accepted.status_code == 303  # and the right token works
    agreement_svc.revoke(deps, "retailer", proposed.id)


def test_a_read_only_token_cannot_act_through_the_web(store):
    deps = store["deps"]
    proposed = agreement_svc.propose(deps, "retailer", {**agreement_svc.show(deps, "retailer", store["agreement"]).terms.to_dict(),
                                                        "name": "scope-probe"})
    c = client(store)
    csrf = log_in(c, party_svc.create_token(deps, "brand", scope="read")[1])
    assert c.get(f"/web/agreements/{proposed.id}").status_code == 200  # reading is fine
    size = audit_svc.signed_head(deps).tree_size
    refused = c.post(f"/web/agreements/{proposed.id}/accept", data={"csrf_token": csrf}, follow_redirects=False)
    assert refused.status_code == 403 and "scope" in refused.text
    query = c.post("/web/query", data={"csrf_token": csrf, "purpose": "analytics.reporting", "sql": "SELECT 1"})
    assert query.status_code == 403
    assert audit_svc.signed_head(deps).tree_size == size
    assert agreement_svc.show(deps, "brand", proposed.id).status.value == "proposed"
    agreement_svc.revoke(deps, "retailer", proposed.id)


def test_another_partys_agreement_and_dataset_are_404(store):
    c = client(store)
    log_in(c, store["tokens"]["outsider"])
    theirs = c.get(f"/web/agreements/{store['agreement']}")
    missing = c.get("/web/agreements/no-such-agreement")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text and store["agreement"] not in theirs.text
    assert c.get("/web/datasets/retailer/purchases").status_code == 404
    assert c.get("/web/agreements/new?dataset=retailer.purchases").status_code == 404
    assert "retailer.purchases" not in c.get("/web/datasets").text
    ledger = c.get("/web/ledger").text
    assert "Verified" in ledger and "syrup" not in ledger  # only the outsider's own entries are listed


def test_security_headers(store):
    c = client(store)
    pages = [c.get("/web/login"), c.get("/web/static/web.css")]
    log_in(c, store["tokens"]["retailer"])
    pages += [c.get("/web/datasets"), c.get("/web/activity"), c.get("/web/nothing-here")]
    for response in pages:
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert pages[2].headers["cache-control"] == "no-store"
    assert pages[-1].status_code == 404
    for response in pages[2:4]:  # no inline script or style for the CSP to block
        assert "<script>" not in response.text and "style=" not in response.text


def test_logout_and_token_revocation_end_the_session(store):
    deps = store["deps"]
    c = client(store)
    csrf = log_in(c, store["tokens"]["retailer"])
    assert c.post("/web/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert c.get("/web/datasets", follow_redirects=False).status_code == 303
    record, secret = party_svc.create_token(deps, "retailer")
    c = client(store)
    log_in(c, secret)
    assert c.get("/web/datasets", follow_redirects=False).status_code == 200
    party_svc.revoke_token(deps, "retailer", record.id)
    assert c.get("/web/datasets", follow_redirects=False).headers["location"] == "/web/login"


def test_builder_shows_bad_input_in_the_form_and_proposes(store):
    c = client(store)
    csrf = log_in(c, store["tokens"]["retailer"])
    form = {"csrf_token": csrf, "dataset": "retailer.customers", "name": "web-built", "valid_until": "2099-01-01",
            "mode": "aggregate", "k": "1", "recipients": "brand", "purposes": "analytics.reporting",
            "include.customer_id": "on", "transform.customer_id": "hash",
            "include.age": "on", "transform.age": "bucket", "param.age": "5"}
    refused = c.post("/web/agreements/new", data=form)
    assert refused.status_code == 400 and "min_group_size" in refused.text
    assert 'value="web-built"' in refused.text  # the person's values are kept
    raw_email = c.post("/web/agreements/new", data={**form, "k": "5", "include.email": "on", "transform.email": "raw"})
    assert raw_email.status_code == 400 and "identifier" in raw_email.text
    done = c.post("/web/agreements/new", data={**form, "k": "5"}, follow_redirects=False)
    assert done.status_code == 303
    page = c.get(done.headers["location"]).text
    assert "proposed" in page and "bucket width=5" in page and "dropped" in page


def test_builder_makes_a_rows_agreement_with_l_diversity(store):
    c = client(store)
    csrf = log_in(c, store["tokens"]["retailer"])
    assert 'value="rows"' in c.get("/web/agreements/new?dataset=retailer.purchases").text
    form = {"csrf_token": csrf, "dataset": "retailer.customers", "name": "web-rows", "valid_until": "2099-01-01",
            "mode": "rows", "k": "5", "l_diversity": "2", "recipients": "brand", "purposes": "analytics.reporting",
            "include.customer_id": "on", "transform.customer_id": "hash", "include.age": "on", "transform.age": "raw"}
    refused = c.post("/web/agreements/new", data=form)  # customers has no sensitive column to count
    assert refused.status_code == 400 and "l_diversity needs a sensitive column" in refused.text
    assert 'id="l_diversity" name="l_diversity" type="number" min="2" step="1" value="2"' in refused.text  # kept
    not_rows = c.post("/web/agreements/new", data={**form, "mode": "aggregate"})
    assert not_rows.status_code == 400 and "applies to row exports" in not_rows.text
    done = c.post("/web/agreements/new", data={**form, "dataset": "retailer.purchases", "name": "web-rows-spend",
                                               "include.spend": "on", "transform.spend": "raw"}, follow_redirects=False)
    assert done.status_code == 303
    page = c.get(done.headers["location"]).text
    assert "rows;" in page and "at least l = 2 distinct values of each sensitive column" in page


def test_an_agreement_page_warns_of_quasi_identifiers_no_export_would_generalise(store):
    terms = {"name": "web-rows", "provider": "retailer", "recipients": ["brand"], "purposes": ["analytics.reporting"],
             "valid_until": "2099-01-01", "access": {"mode": "rows", "min_group_size": 5, "quasi_identifiers": ["age"]},
             "datasets": {"retailer.purchases": {"fields": {"customer_id": "hash", "age": "raw", "store_zip": "raw",
                                                            "spend": "raw"}}}}
    state = agreement_svc.propose(store["deps"], "retailer", terms)
    for party in ("retailer", "brand"):  # the provider and the recipient about to sign
        c = client(store)
        log_in(c, store["tokens"][party])
        page = c.get(f"/web/agreements/{state.id}").text
        warning = re.search(r'data-testid="ungeneralised">(.*?)</p>', page, re.S)
        assert warning and "retailer.purchases" in warning.group(1) and "store_zip" in warning.group(1)
    c = client(store)
    log_in(c, store["tokens"]["retailer"])
    assert 'data-testid="ungeneralised"' not in c.get(f"/web/agreements/{store['agreement']}").text  # aggregate


def test_template_proposal_and_query_pages(store):
    c = client(store)
    csrf = log_in(c, store["tokens"]["retailer"])
    page = c.get("/web/agreements/new?template=retail-aggregate").text
    params = re.findall(r'name="param\.([a-z_]+)"', page)
    assert set(params) == {"name", "recipient", "purpose", "until", "k"}
    values = {"name": "from-template", "recipient": "brand", "purpose": "analytics.reporting",
              "until": "2099-01-01", "k": "10"}
    done = c.post("/web/agreements/from-template", data={"csrf_token": csrf, "template": "retail-aggregate",
                                                         **{f"param.{k}": v for k, v in values.items()}},
                  follow_redirects=False)
    assert done.status_code == 303
    c = client(store)
    csrf = log_in(c, store["tokens"]["brand"])
    refused = c.post("/web/query", data={"csrf_token": csrf, "purpose": "analytics.reporting",
                                         "sql": "SELECT email FROM retailer.purchases"})
    assert refused.status_code == 403 and 'data-testid="reasons"' in refused.text
    unknown = c.post("/web/query", data={"csrf_token": csrf, "purpose": "analytics.reportin", "sql": "SELECT 1"})
    assert unknown.status_code == 400 and "did you mean" in unknown.text
    explained = c.post("/web/query", data={"csrf_token": csrf, "purpose": "analytics.reporting", "action": "explain",
                                           "sql": "SELECT product, COUNT(*) AS n FROM retailer.purchases GROUP BY product"})
    assert explained.status_code == 200 and 'data-testid="explain"' in explained.text


def test_bar_chart_escapes_and_scales():
    svg = str(bar_chart("a <b> & c", [("<script>", 10), ("two", 5)]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'role="img"' in svg and 'width="350.0"' in svg and 'width="175.0"' in svg
    assert "no data yet" in str(bar_chart("empty", []))


def test_sessions_expire_when_idle_and_are_capped():
    now = [0.0]
    sessions = SessionStore(idle_seconds=10, max_age_seconds=100, capacity=2, clock=lambda: now[0])
    first = sessions.create("retailer", "t1")
    now[0] = 5
    assert sessions.get(first.id) is first
    now[0] = 16
    assert sessions.get(first.id) is None
    a, b, c = (sessions.create("p", str(i)) for i in range(3))
    assert sessions.get(a.id) is None and sessions.get(c.id) is c and len(sessions) == 2


def test_web_app_stands_alone(store):
    """create_web is usable on its own (e.g. mounted elsewhere), with its own error pages."""
    c = TestClient(create_web(store["deps"]))
    assert c.get("/login").status_code == 200
    assert c.get("/datasets", follow_redirects=False).headers["location"] == "/login"
