"""Beyond one plain Redis: the job store and the broker over Redis Sentinel (redis-server started as
a sentinel, and a real worker finishing a job through it) and over TLS (a local TLS terminator in
front of the stack's Redis, with a certificate made here)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from plateveil.errors import BrokerError
from plateveil.jobs import JobStore
from plateveil.metrics import queue_stats
from plateveil.schema import ConcealJob, JobRecord, iso_ms, new_job_id, utc_now
from plateveil.settings import load_settings
from plateveil_ops.stack import (
    ORIGINALS_BUCKET,
    OUTPUT_BUCKET,
    free_port,
    redis_server_binary,
    stop_group,
    wait_until,
)
from producer.services import make_sender
from producer.settings import ProducerSettings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sentinel_url(tmp_path_factory) -> Iterator[str]:
    """A Redis master and one sentinel watching it, on free loopback ports."""
    folder = tmp_path_factory.mktemp("sentinel")
    master_port, sentinel_port = free_port(), free_port()
    conf = folder / "sentinel.conf"
    conf.write_text(f"port {sentinel_port}\nbind 127.0.0.1\ndir {folder}\n"
                    f"sentinel monitor plates 127.0.0.1 {master_port} 1\n"
                    "sentinel down-after-milliseconds plates 2000\n")
    procs = []
    try:
        for argv in ([redis_server_binary(), "--port", str(master_port), "--bind", "127.0.0.1", "--save", "",
                      "--dir", str(folder)], [redis_server_binary(), str(conf), "--sentinel"]):
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                          start_new_session=True))
        import redis

        sentinel = redis.Redis(port=sentinel_port, decode_responses=True)
        wait_until(lambda: sentinel.execute_command("SENTINEL", "get-master-addr-by-name", "plates")
                   == ["127.0.0.1", str(master_port)], 30, "sentinel")
        yield f"sentinel://127.0.0.1:{sentinel_port}/0?master_name=plates"
    finally:
        for proc in reversed(procs):
            stop_group(proc.pid, "redis-server")
            proc.wait(timeout=10)


def _job(key_prefix: str) -> ConcealJob:
    job_id = new_job_id()
    return ConcealJob(job_id=job_id, source_bucket=ORIGINALS_BUCKET, source_key=f"{key_prefix}/{job_id}.jpg",
                      output_bucket=OUTPUT_BUCKET, output_key=f"concealed/{key_prefix}/{job_id}.jpg", style="blur",
                      accepted_at=iso_ms(utc_now()))


def test_a_worker_finishes_a_job_through_redis_sentinel(stack, s3, sentinel_url, car_jpeg, tmp_path):
    queue = "plateveil.sentinel-test"
    jobs = JobStore.from_url(sentinel_url)
    jobs.ping()
    job = _job("sentinel")
    s3.put_object(Bucket=ORIGINALS_BUCKET, Key=job.source_key, Body=car_jpeg, ContentType="image/jpeg")
    jobs.create(JobRecord.queued(job))
    settings = load_settings(ProducerSettings).model_copy(update={"redis_url": sentinel_url, "queue": queue})
    sender = make_sender(settings)
    try:
        sender.send_task("plateveil.conceal_photo", args=[job.to_dict()], task_id=job.job_id, queue=queue)
    finally:
        sender.close()
    assert queue_stats(jobs.client, queue).depth == 1  # on the master the sentinel named
    log = tmp_path / "worker.log"
    env = os.environ | {"PLATEVEIL_REDIS_URL": sentinel_url, "PLATEVEIL_QUEUE": queue, "PLATEVEIL_METRICS_PORT": "0"}
    with open(log, "ab") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", "--pool",
                                 "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                                 "-n", f"sentinel-{free_port()}@%h", "-Q", queue],
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        wait_until(lambda: jobs.get(job.job_id).status.finished, 90, "the job through sentinel", proc, log)
    finally:
        stop_group(proc.pid, "workers.celery_app")
        proc.wait(timeout=10)
    record = jobs.get(job.job_id)
    assert record is not None and record.status.value == "done", record
    events = [f for _, f in jobs.client.xrange("plateveil:events") if f["job_id"] == job.job_id]
    assert len(events) == 1 and events[0]["status"] == "done"


class TlsTerminator:
    """TLS on a loopback port, forwarding the plain bytes to a Redis port (what a managed Redis
    with in-transit encryption looks like to a client)."""

    def __init__(self, target_port: int, folder: Path) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(key, hashes.SHA256()))
        self.ca = folder / "ca.pem"
        self.ca.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        keyfile = folder / "key.pem"
        keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(self.ca, keyfile)
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            tls = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
        pipe(tls, upstream)

    def close(self) -> None:
        self.stopped = True
        self.listener.close()


@pytest.fixture(scope="module")
def tls_redis(stack, tmp_path_factory) -> Iterator[TlsTerminator]:
    term = TlsTerminator(stack.ports["redis"], tmp_path_factory.mktemp("tls"))
    yield term
    term.close()


def test_job_store_and_broker_over_tls(stack, tls_redis, redis_client):
    url = f"rediss://127.0.0.1:{tls_redis.port}/0?ssl_ca_certs={tls_redis.ca}"
    jobs = JobStore.from_url(url)
    job = _job("tls")
    jobs.create(JobRecord.queued(job))
    assert redis_client.hget(f"plateveil:job:{job.job_id}", "status") == "queued"  # it went through TLS
    queue = "plateveil.tls-test"
    settings = load_settings(ProducerSettings).model_copy(update={"redis_url": url, "queue": queue})
    sender = make_sender(settings)
    try:
        sender.send_task("plateveil.tls_probe", args=[job.to_dict()], queue=queue)
    finally:
        sender.close()
    try:
        message = json.loads(redis_client.lindex(queue, -1))
        assert message["headers"]["task"] == "plateveil.tls_probe"
    finally:
        redis_client.delete(queue)


def test_tls_refuses_a_certificate_it_cannot_verify(tls_redis):
    jobs = JobStore.from_url(f"rediss://127.0.0.1:{tls_redis.port}/0")  # no CA given: the system's
    with pytest.raises(BrokerError, match="(?i)certificate"):
        jobs.ping()


def test_doctor_reads_the_sentinels(sentinel_url):
    def doctor(url: str) -> tuple[int, str]:
        out = subprocess.run([sys.executable, "-m", "plateveil_ops.cli", "doctor", "--skip-models"], capture_output=True,
                             text=True, env=os.environ | {"PLATEVEIL_REDIS_URL": url}, timeout=120)
        return out.returncode, out.stdout + out.stderr

    rc, text = doctor(sentinel_url)
    assert rc == 0, text
    assert "1/1 sentinels answer; master plates at 127.0.0.1:" in text and "(Sentinel, redis " in text
    rc, text = doctor(sentinel_url.replace("master_name=plates", "master_name=other"))
    assert rc == 1 and "the sentinels know no master named 'other'" in text
