"""``plateveil conceal``: run the pipeline on local files, write concealed copies and a JSONL report.

One report line per input::

    {"input": path, "output": path, "plates": [{"polygon": [[x, y] x4], "score": s}],
     "timings_ms": {"decode", "detect", "landmarks", "conceal", "encode", "total"}, "model": "name@version"}

Polygons are in the input image's pixels after EXIF orientation. An input that fails gets
``"output": null`` and ``"error": reason``; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from model_store.backends import BACKENDS, DEFAULT_BACKEND
from plateveil.conceal import DEFAULT_STYLE, style_names
from plateveil.errors import PermanentError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "conceal", help="conceal plates in local image files",
        description="Conceal licence plates in local images; writes copies and a JSONL report.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for concealed images")
    p.add_argument("--report", type=Path, metavar="FILE.jsonl", help="JSONL report (default: DIR/report.jsonl)")
    p.add_argument("--style", default=DEFAULT_STYLE, choices=style_names(), help="concealment style")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help="inference backend")
    p.add_argument("--model-dir", type=Path, default=None, help="model bundle folder (default: the shipped one)")
    p.add_argument("--jpeg-quality", type=int, default=90, help="JPEG/WebP output quality (1-100)")
    p.add_argument("--threads", type=int, default=0, help="inference threads (0 = backend default)")
    p.set_defaults(func=run)


def collect_inputs(inputs: list[str]) -> list[Path]:
    """Files as given (any extension), folders expanded recursively to image files, in order,
    each file once."""
    paths: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            found = [path]  # a missing file is reported as an error line
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                paths.append(p)
    return paths


def output_path(out_dir: Path, source: Path, fmt: str, input_fmt: str | None, taken: set[str]) -> Path:
    """``out_dir / source.name``, with the extension changed when the format changes and a
    ``-1``, ``-2``... suffix when the name is already used in this run."""
    from plateveil.imaging import EXTENSIONS

    stem, suffix = source.stem, source.suffix
    if fmt != input_fmt or not suffix:
        suffix = EXTENSIONS.get(fmt, ".png")
    name, k = f"{stem}{suffix}", 0
    while name.lower() in taken:
        k += 1
        name = f"{stem}-{k}{suffix}"
    taken.add(name.lower())
    return out_dir / name


def report_line(source: Path, output: Path | None, result: Any = None, model: str = "",
                error: str | None = None) -> dict[str, Any]:
    if result is None:
        return {"input": str(source), "output": None, "plates": [], "timings_ms": {}, "model": model,
                "error": error}
    return {
        "input": str(source),
        "output": str(output),
        "plates": [{"polygon": [[round(float(x), 1), round(float(y), 1)] for x, y in p.polygon],
                    "score": round(float(p.score), 4)} for p in result.plates],
        "timings_ms": {k: round(float(v), 2) for k, v in result.timings_ms.items()},
        "model": result.model,
    }


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from model_store.errors import ModelLoadError
    from model_store.runtime import load_model
    from plateveil.imaging import sniff_image
    from plateveil.pipeline import conceal_bytes

    try:
        model = load_model(args.model_dir, backend=args.backend, threads=args.threads)
    except (ModelLoadError, ValueError) as exc:
        print(f"plateveil conceal: cannot load model: {exc}", file=sys.stderr)
        return 2
    sources = collect_inputs(args.inputs)
    if not sources:
        print("plateveil conceal: no input images found", file=sys.stderr)
        return 2
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path: Path = args.report or out_dir / "report.jsonl"
    report_path.parent.mkdir(parents=True, exist_ok=True)

    taken: set[str] = set()
    totals: list[float] = []
    n_plates = n_failed = 0
    with report_path.open("w", encoding="utf-8") as report:
        for source in tqdm(sources, desc="conceal", unit="img", file=sys.stderr, disable=None):
            try:
                data = source.read_bytes()
                result = conceal_bytes(data, model, style=args.style, jpeg_quality=args.jpeg_quality)
                target = output_path(out_dir, source, result.format, sniff_image(data), taken)
                target.write_bytes(result.image_bytes)
                line = report_line(source, target, result)
                totals.append(result.timings_ms["total"])
                n_plates += len(result.plates)
            except (PermanentError, OSError) as exc:
                n_failed += 1
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                logger.warning("%s: %s", source, reason)
                line = report_line(source, None, model=model.tag, error=reason)
            report.write(json.dumps(line) + "\n")
            report.flush()

    p50, p95 = (float(np.percentile(totals, q)) for q in (50, 95)) if totals else (0.0, 0.0)
    print(f"plateveil conceal: {len(sources)} images ({n_failed} failed), {n_plates} plates, "
          f"total p50 {p50:.1f} ms, p95 {p95:.1f} ms, model {model.tag}; report {report_path}",
          file=sys.stderr)
    return 1 if n_failed else 0
