"""Peak memory of decoding "small file, huge decode" photos (issue 27): each case is decoded in a
fresh process and its peak RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is read before and
after ``imaging.decode``.

    .venv/bin/python scripts/bench/decode_memory.py                     # plateveil.imaging as it is
    .venv/bin/python scripts/bench/decode_memory.py --module old.py     # a single-file imaging.py (e.g. git show of before issue 34)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CASES = {  # name: (width, height, PNG colour type, bit depth)
    "7070x7070 RGBA 8-bit PNG": (7070, 7070, 6, 8),
    "7070x7070 RGBA 16-bit PNG": (7070, 7070, 6, 16),
    "7070x7070 RGB 8-bit PNG": (7070, 7070, 2, 8),
    "4000x3000 RGBA 8-bit PNG": (4000, 3000, 6, 8),
}

_CHILD = r"""
import importlib, importlib.util, json, resource, sys, time
if sys.argv[1] == "plateveil.imaging":
    m = importlib.import_module("plateveil.imaging")
else:
    spec = importlib.util.spec_from_file_location("imaging_under_test", sys.argv[1])
    m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m; spec.loader.exec_module(m)
import cv2, numpy, PIL.Image  # loaded before the first reading
data = open(sys.argv[2], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
try:
    out = m.decode(data)
    result = "decoded %dx%d" % (out.width, out.height)
except Exception as exc:
    result = "refused: %s" % exc
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_mb": before / 1024, "after_mb": after / 1024, "s": time.perf_counter() - t0,
                  "result": result}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="plateveil.imaging",
                        help="a single-file imaging.py to measure instead (e.g. from git show); default the package")
    args = parser.parse_args()
    from plateveil_ops.samples import flat_png

    with tempfile.TemporaryDirectory() as tmp:
        for name, (w, h, ct, bd) in CASES.items():
            path = Path(tmp) / "case.png"
            path.write_bytes(flat_png(w, h, ct, bd))
            proc = subprocess.run([sys.executable, "-c", _CHILD, str(args.module), str(path)], capture_output=True,
                                  text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{name:28s} {path.stat().st_size / 1024:7.0f} KB  peak RSS {r['before_mb']:7.0f} -> "
                  f"{r['after_mb']:7.0f} MB  {r['s']:5.2f} s  {r['result'][:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
