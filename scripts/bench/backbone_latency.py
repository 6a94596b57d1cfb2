"""Detector latency and compute per backbone and input size, for choosing detector 2.0 (issue 24).

Builds every candidate SSD+FPN detector of ``model_training.nets`` (random weights: the weights do not change
the time), exports it to ONNX with the bundle's own export code (``model_training.export.export_net``, dynamic
H/W as shipped), and times ONNX Runtime with the serving session options (``OnnxBackend``: 2 intra-op
threads, no spinning, all graph optimisations) on a (1, 3, H, W) input: median, p95 and min over
``--runs`` runs after ``--warmup`` (on a machine shared with other work the min is the steadiest). ``--repeat`` passes over all nets (interleaved, so a burst of load on a shared
machine spreads over the nets instead of landing on one). The shipped 1.10.0 detector.onnx is timed the
same way for reference. Compute is counted from the ONNX graph (multiply-adds of every Conv at that input
size: noise-free), parameters from the MXNet net (BatchNorm running stats excluded).

    python scripts/bench/backbone_latency.py [--sizes 512x288 640x384 768x448] [--runs 30] [--warmup 5]
                                       [--repeat 2] [--threads 2] [--json runs/backbone_latency.json]

Sizes are network inputs (W x H, multiples of 32): the runtime resizes a photo's long side to
``long_side`` and pads to 32, so a 1280x720 photo at long_side 640 is 640x384. Numbers only: nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from model_store.backends import backend_files  # noqa: E402
from model_store.backends.onnx_backend import OnnxBackend  # noqa: E402

SHIPPED = ROOT / "model_store" / "weights" / "plateveil-plates-1.10.0"
CANDIDATES = ["ssd_mnet025_fpn_pt", "ssd_mnet050_fpn_pt", "ssd_mnet075_fpn_pt", "ssd_mnetv2_fpn_pt"]
BACKBONE = {"1.10.0 (ssd_mnet025_fpn_sq)": "MobileNet v1 0.25, ReLU", "ssd_mnet025_fpn_pt": "MobileNet v1 0.25",
            "ssd_mnet050_fpn_pt": "MobileNet v1 0.5", "ssd_mnet075_fpn_pt": "MobileNet v1 0.75",
            "ssd_mnetv2_fpn_pt": "MobileNet v2 1.0"}


def conv_macs(path: Path, width: int, height: int) -> float:
    """Multiply-adds of every Conv of the ONNX graph at input (1, 3, height, width)."""
    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, height, width), strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output)}
    weights = {w.name: list(w.dims) for w in model.graph.initializer}
    macs = 0.0
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        out = shapes[node.output[0]]
        w = weights[node.input[1]]  # [out, in / groups, kh, kw]
        macs += float(np.prod(out)) * w[1] * w[2] * w[3]
    return macs


def trainable_params(net: Any) -> int:
    return int(sum(p.data().size for p in net.collect_params().values() if p.grad_req != "null"))


def export(arch: str, out_dir: Path) -> tuple[Path, int]:
    from model_training.export import export_net
    from model_training.nets import get_net, init_net

    net = init_net(get_net(arch))
    export_net(net, out_dir, "detector", (1, 3, 384, 640), dynamic_hw=True)
    return out_dir / backend_files("onnx")["detector"]["onnx"], trainable_params(net)


def shipped_params() -> int:
    import mxnet as mx

    params = mx.nd.load(str(SHIPPED / backend_files("mxnet")["detector"]["params"]))
    return int(sum(v.size for k, v in params.items() if k.startswith("arg:")))


def time_graph(graph: Any, width: int, height: int, runs: int, warmup: int) -> list[float]:
    x = np.random.default_rng(0).normal(size=(1, 3, height, width)).astype(np.float32)
    for _ in range(warmup):
        graph.run(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        graph.run(x)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["512x288", "640x384", "768x448"], help="W x H, multiples of 32")
    ap.add_argument("--nets", nargs="+", default=CANDIDATES)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write every time here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = []
    for s in args.sizes:
        w, h = (int(v) for v in s.lower().split("x"))
        if w % 32 or h % 32:
            ap.error(f"size {s}: both sides must be multiples of 32")
        sizes.append((w, h))

    with tempfile.TemporaryDirectory() as tmp:
        onnx_files = {"1.10.0 (ssd_mnet025_fpn_sq)": SHIPPED / backend_files("onnx")["detector"]["onnx"]}
        params = {"1.10.0 (ssd_mnet025_fpn_sq)": shipped_params()}
        for arch in args.nets:
            onnx_files[arch], params[arch] = export(arch, Path(tmp) / arch)
        backend = OnnxBackend(threads=args.threads)
        graphs = {name: backend.load({"onnx": path}) for name, path in onnx_files.items()}
        sizes_mb = {name: path.stat().st_size / 1e6 for name, path in onnx_files.items()}
        macs = {(name, w, h): conv_macs(path, w, h) for name, path in onnx_files.items() for w, h in sizes}
        times: dict[tuple[str, int, int], list[list[float]]] = {k: [] for k in macs}
        for rep in range(args.repeat):
            for w, h in sizes:
                for name, graph in graphs.items():
                    times[(name, w, h)].append(time_graph(graph, w, h, args.runs, args.warmup))
            print(f"pass {rep + 1}/{args.repeat} done", file=sys.stderr)

    head = "| detector | backbone | input WxH | GMAC | params (M) | onnx MB | " + " | ".join(
        f"pass {r + 1} median / p95 / min ms" for r in range(args.repeat)) + " |"
    print(f"ONNX Runtime {args.threads} intra-op threads, {args.runs} runs after {args.warmup} warm-up, "
          f"{args.repeat} passes")
    print(head)
    print("|" + "---|" * (6 + args.repeat))
    rows = []
    for w, h in sizes:
        for name in onnx_files:
            passes = times[(name, w, h)]
            cells = [f"{np.median(t):.1f} / {np.percentile(t, 95):.1f} / {np.min(t):.1f}" for t in passes]
            print(f"| {name} | {BACKBONE.get(name, '')} | {w}x{h} | {macs[(name, w, h)] / 1e9:.2f} | "
                  f"{params[name] / 1e6:.2f} | {sizes_mb[name]:.1f} | " + " | ".join(cells) + " |")
            rows.append({"net": name, "width": w, "height": h, "gmac": macs[(name, w, h)] / 1e9,
                         "params": params[name], "onnx_mb": sizes_mb[name], "times_ms": passes})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                                         "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
