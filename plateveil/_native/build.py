"""Build ``plateveil._native._jpegcoef`` (cffi API mode over the system libjpeg-turbo; ``jpegcoef.c``).

    python -m plateveil._native.build [--force]

Needs a C compiler and libjpeg-turbo's headers (Debian: ``gcc libjpeg62-turbo-dev``; ``make setup`` installs them
with apt when it runs as root; another libjpeg fails the build, and the worker falls back). Rebuilds only when ``jpegcoef.c`` or this file is newer than the built module. Exits 0
without building (and says why) when the compiler or the headers are missing: the worker then uses the
full decode + re-encode path and writes the reason into each sidecar; exit 1 when a build was tried and failed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "jpegcoef.c"
MODULE = "plateveil._native._jpegcoef"

CDEF = """
typedef struct pv_jpeg pv_jpeg;
int pv_info(const unsigned char *data, unsigned long len, int *info, unsigned short *quant, char *err, int errlen);
pv_jpeg *pv_open(const unsigned char *data, unsigned long len, char *err, int errlen);
int pv_warnings(pv_jpeg *h);
void pv_close(pv_jpeg *h);
int pv_decode(pv_jpeg *h, int num, int x, int y, int w, int hh, unsigned char *out, char *err, int errlen);
int pv_set_blocks(pv_jpeg *h, int n, const int *comp, const int *brow, const int *bcol, const short *coefs,
                  char *err, int errlen);
int pv_write(pv_jpeg *h, unsigned char **out, unsigned long *outlen, int *flags, char *err, int errlen);
void pv_free(unsigned char *p);
long pv_get_blocks(pv_jpeg *h, int ci, short *out, long cap, char *err, int errlen);
"""

HEADER_DIRS = ("/usr/include", "/usr/local/include", "/opt/homebrew/include")


def built_path() -> Path:
    return HERE / ("_jpegcoef" + (sysconfig.get_config_var("EXT_SUFFIX") or ".so"))


def missing() -> str | None:
    """Why the extension cannot be built here, or None."""
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (cc/gcc)"
    if not any((Path(d) / "jpeglib.h").exists() for d in HEADER_DIRS):
        return "no jpeglib.h (Debian: apt-get install libjpeg62-turbo-dev)"
    return None


def build(force: bool = False) -> Path:
    target = built_path()
    newest = max(SOURCE.stat().st_mtime, Path(__file__).stat().st_mtime)
    if target.exists() and target.stat().st_mtime >= newest and not force:
        return target
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source(MODULE, SOURCE.read_text(), libraries=["jpeg"], extra_compile_args=["-O2"])
    tmp = HERE.parents[1] / "build" / "native"
    tmp.mkdir(parents=True, exist_ok=True)
    out = Path(ffi.compile(tmpdir=str(tmp), verbose=False))
    shutil.copy2(out, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"plateveil._native: not building the JPEG extension ({why}): concealed JPEGs are re-encoded whole")
        return 0
    try:
        path = build(args.force)
    except Exception as exc:  # a compiler error: say it, the worker falls back
        print(f"plateveil._native: building the JPEG extension failed: {exc}", file=sys.stderr)
        return 1
    print(f"plateveil._native: JPEG extension {path.relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
