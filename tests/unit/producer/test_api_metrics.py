"""The upload service's metrics middleware on a bare FastAPI app (no Redis, no S3)."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from producer import metrics as api_metrics
from producer.metrics import reject_reason


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/photos", status_code=202)
    async def upload() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/v1/jobs/{job_id}")
    async def job(job_id: str) -> dict[str, str]:
        if job_id == "missing":
            raise HTTPException(404, "no job")
        return {"job_id": job_id}

    api_metrics.install(app)
    return app


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_requests_are_counted_by_route_template_status_and_reject_reason():
    with TestClient(_app()) as client:
        assert client.post("/v1/photos", content=b"x" * 5000).status_code == 202
        assert client.get("/v1/jobs/abc").status_code == 200
        assert client.get("/v1/jobs/def").status_code == 200
        assert client.get("/v1/jobs/missing").status_code == 404
        assert client.get("/nope/../scanner").status_code == 404
        resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    got = _samples(resp.text)
    assert got[("plateveil_api_requests_total", (("method", "GET"), ("route", "/v1/jobs/{job_id}"),
                                                 ("status", "200")))] == 2
    assert got[("plateveil_api_requests_total", (("method", "POST"), ("route", "/v1/photos"),
                                                 ("status", "202")))] == 1
    assert got[("plateveil_api_rejects_total", (("reason", "not_found"), ("route", "/v1/jobs/{job_id}")))] == 1
    assert got[("plateveil_api_rejects_total", (("reason", "not_found"), ("route", "unmatched")))] == 1
    assert got[("plateveil_api_upload_bytes_count", ())] == 1
    assert got[("plateveil_api_upload_bytes_sum", ())] == 5000
    assert not any(labels and dict(labels).get("route") == "/metrics" for _, labels in got)
    # no services (no Redis) in this app: the queue is not read, and the scrape still works
    assert not any(name.startswith("plateveil_queue") for name, _ in got)


def test_two_apps_in_one_process_have_their_own_registries():
    with TestClient(_app()) as a, TestClient(_app()) as b:
        a.get("/v1/jobs/x")
        got = _samples(b.get("/metrics").text)
    assert not any(name == "plateveil_api_requests_total" for name, _ in got)


def test_reject_reasons():
    assert reject_reason(401) == "unauthorized"
    assert reject_reason(413) == "too_large"
    assert reject_reason(415) == "unsupported_media_type"
    assert reject_reason(429) == "rate_limited"
    assert reject_reason(418) == "client_error"
    assert reject_reason(507) == "server_error"


def test_made_up_methods_and_paths_collapse_to_one_label_value_each():
    client = TestClient(_app())
    for n in range(200):
        client.request(f"MADEUP{n}", f"/nothing/{n}")
        client.request(f"X{n}", "/v1/jobs/abc")
    families = {(s.name, tuple(sorted(s.labels.items()))) for fam in
                text_string_to_metric_families(client.get("/metrics").text) for s in fam.samples
                if s.name == "plateveil_api_requests_total"}
    methods = {dict(labels)["method"] for _, labels in families}
    routes = {dict(labels)["route"] for _, labels in families}
    assert methods == {"other"} and routes == {"unmatched", "/v1/jobs/{job_id}"}
    assert api_metrics.method_label("GET") == "GET" and api_metrics.method_label("get") == "other"
