"""``plateveil doctor``: check the environment a service is about to run in.

Python and the pinned versions of the packages that matter (numpy, mxnet, onnx, onnxruntime,
opencv, celery, ...), that the model bundle loads with each backend and finds plates in a sample
photo, and - when configured through ``PLATEVEIL_*`` - that Redis and the S3 buckets answer.
Exit code 0 when nothing failed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from model_store.backends import BACKENDS, DEFAULT_BACKEND, check_backend
from plateveil.settings import CommonSettings, load_settings

LOCK_FILE = Path(__file__).resolve().parents[1] / "requirements.lock"
CHECKED_PACKAGES = ("numpy", "mxnet", "gluoncv", "onnx", "onnxruntime", "opencv-python", "celery", "redis",
                    "boto3", "fastapi", "uvicorn", "pydantic-settings", "pillow", "prometheus_client",
                    "python-json-logger", "cryptography", "jsonschema")


class DoctorSettings(CommonSettings):
    """The common settings, with Redis optional: unset means "not configured, skip the check"."""

    redis_url: str | None = Field(None)  # type: ignore[assignment]
    backend: str = Field(DEFAULT_BACKEND)
    model_dir: str | None = Field(None)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        return check_backend(value)


def _pins() -> dict[str, str]:
    if not LOCK_FILE.is_file():
        return {}
    pins = {}
    for line in LOCK_FILE.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


class Report:
    def __init__(self) -> None:
        self.failed = 0

    def line(self, status: str, what: str, detail: str = "") -> None:
        print(f"{status:<5} {what:<28} {detail}".rstrip())
        if status == "FAIL":
            self.failed += 1

    def run(self, what: str, check: Callable[[], str]) -> None:
        t0 = time.perf_counter()
        try:
            detail = check()
        except Exception as exc:  # a doctor reports every failure and goes on
            self.line("FAIL", what, f"{type(exc).__name__}: {exc}")
            return
        self.line("ok", what, f"{detail} ({(time.perf_counter() - t0) * 1000:.0f} ms)")


def check_packages(report: Report) -> None:
    v = sys.version_info
    report.line("ok" if (v.major, v.minor) == (3, 11) else "FAIL", "python", sys.version.split()[0])
    pins = _pins()
    for name in CHECKED_PACKAGES:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            report.line("FAIL", name, "not installed")
            continue
        pinned = pins.get(name.lower())
        if pinned and pinned != installed:
            report.line("FAIL", name, f"{installed} installed, requirements.lock pins {pinned}")
        else:
            report.line("ok", name, installed)


def check_models(report: Report, settings: DoctorSettings, backends: list[str]) -> None:
    from model_store.runtime import load_model
    from plateveil_ops.samples import render_scene

    scene = render_scene(seed=0, size=(640, 480))
    for backend in backends:
        def load_and_run(backend: str = backend) -> str:
            model = load_model(settings.model_dir, backend=backend)
            plates, timings = model.find_plates(scene.image_bgr)
            return (f"{model.tag} from {model.model_dir}: {len(plates)} plate(s) on a sample, "
                    f"detect {timings.detect:.0f} ms + landmarks {timings.landmarks:.0f} ms")

        report.run(f"model ({backend})", load_and_run)


def check_services(report: Report, settings: DoctorSettings, force_s3: bool) -> None:
    from plateveil_ops import doctor_ops

    doctor_ops.check_redis(report, settings)  # plain / TLS / Sentinel, the queue, failed webhooks
    if settings.s3_endpoint_url or settings.storage != "s3" or force_s3:
        def store_ok() -> str:
            from plateveil.storage import get_store

            quick = settings.model_copy(update={"s3_max_attempts": 1, "s3_connect_timeout_s": 2,
                                                "s3_read_timeout_s": 5})
            buckets = [settings.originals_bucket, settings.output_bucket]
            get_store(quick).check(buckets)
            return f"{settings.storage} {settings.s3_endpoint_url or ''} buckets {', '.join(buckets)}".replace("  ", " ")

        report.run("object store", store_ok)
    else:
        report.line("skip", "object store", "PLATEVEIL_S3_ENDPOINT_URL not set (use --s3 to check AWS)")


def run_doctor(args: argparse.Namespace) -> int:
    settings = load_settings(DoctorSettings)
    report = Report()
    check_packages(report)
    backends = list(BACKENDS) if args.all_backends else [settings.backend]
    if not args.skip_models:
        check_models(report, settings, backends)
    check_services(report, settings, args.s3)
    from plateveil_ops import doctor_ops

    doctor_ops.check_observability(report)
    doctor_ops.check_webhooks(report)
    doctor_ops.check_intake(report, args.sqs)
    print("doctor: all checks passed" if not report.failed else f"doctor: {report.failed} check(s) FAILED")
    return 1 if report.failed else 0


def register(sub: Any) -> None:
    parser = sub.add_parser("doctor", help="check Python, packages, the model bundle, Redis and S3",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--all-backends", action="store_true", help="load the model with onnx AND mxnet")
    parser.add_argument("--s3", action="store_true", help="check the buckets even without an S3 endpoint")
    parser.add_argument("--sqs", metavar="QUEUE_URL", help="check this SQS intake queue (reachable, redrive policy)")
    parser.add_argument("--skip-models", action="store_true", help="do not load the model bundle")
    parser.set_defaults(func=run_doctor)


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m plateveil_ops.doctor")
    register(_parser.add_subparsers(dest="command", required=True))
    _args = _parser.parse_args(["doctor", *sys.argv[1:]])
    sys.exit(_args.func(_args))
