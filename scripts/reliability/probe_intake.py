"""Re-run issue 36's findings 1-3 against the upload service and print what happened (numbers).

Starts its own Redis and S3 server (moto) on free loopback ports, builds the upload service in this
process with small limits (share 50, two keys A and B, the default sources) and talks to it through
httpx's ASGI transport. No worker runs, so queued jobs stay queued and the share stays taken. The
S3 HEADs the service makes are counted by wrapping its object store.

    .venv/bin/python scripts/reliability/probe_intake.py            # prints one JSON object

1. MinIO flood: one ``/v1/events/minio`` request with 120 records of 120 real objects (share 50);
   the same object sent 5 times with a new ``versionId`` each; a 2,000-record request (HEADs);
   a 100-record request once the share is used (HEADs); a ``.png`` through ``/v1/s3-events`` with
   ``PLATEVEIL_EVENTS_SUFFIXES=.jpg`` (the filter).
2. 1,000 requests with made-up methods and random paths: ``/metrics`` size before and after.
3. Key B on key A's job: status, flag (the job marked done), re-run of A's original.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _minio_doc(bucket: str, keys: list[str], version: str | None = None, minimal: bool = False) -> dict[str, Any]:
    records = []
    for n, key in enumerate(keys):
        obj: dict[str, Any] = {"key": key} if minimal else {"key": key, "eTag": f"e{n}", "sequencer": f"{n:08X}"}
        if version is not None:
            obj["versionId"] = version
        records.append({"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": bucket}, "object": obj}})
    return {"EventName": "s3:ObjectCreated:Put", "Key": f"{bucket}/{keys[0]}", "Records": records}


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from plateveil_ops.samples import render_scene
    from plateveil_ops.stack import ORIGINALS_BUCKET, Stack
    from producer.apikeys import hash_key
    from producer.app import create_app
    from producer.settings import ProducerSettings

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, Stack(state_dir=Path(tmp), with_worker=False, with_api=False,
                                                     with_registry=False) as stack:
        env = stack.env
        keys = {"key-a": secrets.token_urlsafe(16), "key-b": secrets.token_urlsafe(16)}
        fields: dict[str, Any] = dict(
            redis_url=env["PLATEVEIL_REDIS_URL"], s3_endpoint_url=env["PLATEVEIL_S3_ENDPOINT_URL"],
            s3_region=env["PLATEVEIL_S3_REGION"], s3_access_key_id=env["PLATEVEIL_S3_ACCESS_KEY_ID"],
            s3_secret_access_key=env["PLATEVEIL_S3_SECRET_ACCESS_KEY"], s3_max_attempts=1,
            api_key_hashes=",".join(f"{kid}:{hash_key(k)}" for kid, k in keys.items()),
            key_max_inflight=50, max_event_records=100, rate_per_s=1000, rate_burst=1000, queue="plateveil.probe",
            events_suffixes=(".jpg",), source_allow={"*": (ORIGINALS_BUCKET + "/",)})
        settings = ProducerSettings(**fields)
        s3 = stack.s3_client()
        jpeg = render_scene(seed=1, size=(160, 120)).jpeg()
        flood = [f"flood/{n:04d}.jpg" for n in range(120)]
        for key in flood + ["same/car.jpg"]:
            s3.put_object(Bucket=ORIGINALS_BUCKET, Key=key, Body=jpeg, ContentType="image/jpeg")
        s3.put_object(Bucket=ORIGINALS_BUCKET, Key="filtered/car.png", Body=jpeg, ContentType="image/png")
        redis = stack.redis_client()
        app = create_app(settings)
        heads = [0]

        async def run() -> None:
            async with app.router.lifespan_context(app):
                store = app.state.services.store
                real_head = store.head

                def counting_head(bucket: str, key: str) -> Any:
                    heads[0] += 1
                    return real_head(bucket, key)

                store.head = counting_head
                transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
                auth = {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}
                async with httpx.AsyncClient(transport=transport, base_url="http://probe", timeout=120) as http:
                    await _finding1(http, auth, out, heads, redis)
                    await _finding2(http, out)
                    await _finding3(http, auth, out, jpeg, redis, ORIGINALS_BUCKET)

        async def _finding1(http: httpx.AsyncClient, auth: dict[str, Any], out: dict[str, Any], heads: list[int],
                            redis: Any) -> None:
            for label, count in (("minio_120_records", 120), ("minio_100_records", 100)):
                heads[0] = 0
                t0 = time.perf_counter()
                resp = await http.post("/v1/events/minio", json=_minio_doc(ORIGINALS_BUCKET, flood[:count]),
                                       headers=auth["key-a"])
                body = resp.json()
                out[label] = {"status": resp.status_code, "heads": heads[0],
                              "jobs": len(body.get("accepted", [])) if isinstance(body, dict) else None,
                              "inflight_of_key_a": redis.zcard("plateveil:inflight:key-a"),
                              "share": 50, "seconds": round(time.perf_counter() - t0, 2)}
            # the same object, a new versionId each time (key B: its share is free)
            made = 0
            for n in range(5):
                resp = await http.post("/v1/events/minio", json=_minio_doc(ORIGINALS_BUCKET, ["same/car.jpg"],
                                                                           version=f"v{n}"), headers=auth["key-b"])
                made += len(resp.json().get("accepted", [])) if resp.status_code == 202 else 0
            out["same_object_5_version_ids"] = {"jobs": made}
            heads[0] = 0
            many = [f"flood/{n % 120:04d}.jpg" for n in range(2000)]
            doc = _minio_doc(ORIGINALS_BUCKET, many, minimal=True)
            resp = await http.post("/v1/events/minio", json=doc, headers=auth["key-b"])
            out["minio_2000_records"] = {"status": resp.status_code, "heads": heads[0],
                                         "body_bytes": len(json.dumps(doc))}
            heads[0] = 0
            records = _minio_doc(ORIGINALS_BUCKET, flood[:100])["Records"]
            for r in records:
                r["eventName"] = "ObjectCreated:Put"  # the AWS spelling
            resp = await http.post("/v1/s3-events", json={"Records": records}, headers=auth["key-a"])
            out["s3_events_100_records_share_used"] = {"status": resp.status_code, "heads": heads[0],
                                                       "detail": str(resp.json().get("detail", ""))[:80]}
            resp = await http.post("/v1/s3-events", json={"Records": [
                {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": ORIGINALS_BUCKET},
                                                          "object": {"key": "filtered/car.png"}}}]},
                                   headers=auth["key-b"])
            out["s3_events_png_with_suffixes_jpg"] = {"status": resp.status_code,
                                                       "jobs": len(resp.json().get("accepted", []))}

        async def _finding2(http: httpx.AsyncClient, out: dict[str, Any]) -> None:
            sizes = [len((await http.get("/metrics")).content)]
            for _ in range(2):
                for n in range(1000):
                    method = "X" + secrets.token_hex(4).upper()
                    await http.request(method, f"/{secrets.token_hex(6)}/{n}")
                sizes.append(len((await http.get("/metrics")).content))
            out["metrics_made_up_methods"] = {"bytes_at_start": sizes[0], "bytes_after_1000": sizes[1],
                                              "bytes_after_2000": sizes[2]}

        async def _finding3(http: httpx.AsyncClient, auth: dict[str, Any], out: dict[str, Any], jpeg: bytes,
                            redis: Any, originals: str) -> None:
            redis.delete("plateveil:inflight:key-a", "plateveil:inflight:key-b")
            up = await http.post("/v1/photos", files={"file": ("a.jpg", jpeg)}, headers=auth["key-a"])
            job = up.json()
            redis.hset("plateveil:job:" + job["job_id"], mapping={"status": "done", "completed_at": job["accepted_at"]})
            status_b = await http.get(f"/v1/jobs/{job['job_id']}", headers=auth["key-b"])
            flag_b = await http.post(f"/v1/jobs/{job['job_id']}/flag", json={"reason": "probe"}, headers=auth["key-b"])
            rerun_b = await http.post("/v1/jobs", json={"bucket": originals, "key": job["source_key"]},
                                      headers=auth["key-b"])
            status_a = await http.get(f"/v1/jobs/{job['job_id']}", headers=auth["key-a"])
            out["key_b_on_key_a_job"] = {"upload_a": up.status_code, "status_a": status_a.status_code,
                                         "status_b": status_b.status_code, "flag_b": flag_b.status_code,
                                         "rerun_b": rerun_b.status_code,
                                         "status_b_shows_plates": "plates" in status_b.text}

        asyncio.run(run())
        redis.delete("plateveil.probe")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
