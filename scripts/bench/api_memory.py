"""Memory of the upload service under big unauthenticated bodies (issue 27): starts a local stack
without a worker, sends bodies without an API key, and reads the API process's resident memory
(VmRSS, and its peak VmHWM, from /proc/<pid>/status) before and after each.

    .venv/bin/python scripts/bench/api_memory.py               # the code in the current directory
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path


def _mem(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return out


def _body(kind: str, size: int) -> tuple[bytes, bytes, bytes, str]:
    """(prefix, 1 MB repeated filler, suffix, content type) of a valid body of about ``size`` bytes:
    JSON is an S3 notification with millions of empty records (each a Python dict once parsed);
    multipart is one file field."""
    if kind == "json":
        return b'{"Records": [', b"{}," * (2**20 // 3), b"{}]}", "application/json"
    head = (b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff")
    return head, b"\0" * 2**20, b"\r\n--xyz--\r\n", "multipart/form-data; boundary=xyz"


def _tmp_mb(tmp: Path, pid: int) -> float:
    """MB in files under ``tmp`` the API holds open (Python's temp files are unnamed: O_TMPFILE)."""
    total = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd).startswith(str(tmp)):
                total += fd.stat().st_size
        except OSError:
            pass
    return total / 2**20


def _send(port: int, path: str, mb: int, kind: str, tmp: Path, pid: int, key: str | None = None) -> str:
    """POST about ``mb`` MB without a key; the status line (the server may answer before the end)
    and the most the API had spooled to its temp folder while the body was sent."""
    prefix, filler, suffix, ctype = _body(kind, mb)
    pieces = mb
    size = len(prefix) + len(filler) * pieces + len(suffix)
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\nContent-Length: {size}\r\n"
            + (f"Authorization: Bearer {key}\r\n" if key else "") + "Connection: close\r\n\r\n").encode()
    spooled = 0.0
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        sock.sendall(head)
        sent = 0
        try:
            sock.sendall(prefix)
            for n in range(pieces):
                sock.sendall(filler)
                sent += len(filler)
                if n % 16 == 0:
                    spooled = max(spooled, _tmp_mb(tmp, pid))
            sock.sendall(suffix)
        except (BrokenPipeError, ConnectionResetError):
            pass
        spooled = max(spooled, _tmp_mb(tmp, pid))
        try:
            status = sock.recv(200).split(b"\r\n")[0].decode()
        except (ConnectionResetError, TimeoutError) as exc:
            status = type(exc).__name__
    return f"{status} (sent {sent / 2**20:.0f} of {size / 2**20:.0f} MB, spooled {spooled:.0f} MB)"


def main() -> int:
    sys.path.insert(0, os.getcwd())
    from plateveil_ops.stack import Stack

    spool = Path(tempfile.mkdtemp(prefix="api-tmp-"))
    os.environ["TMPDIR"] = str(spool)  # the API's temp folder (multipart spooling)
    with tempfile.TemporaryDirectory() as tmp, Stack(state_dir=Path(tmp), with_worker=False) as stack:
        api = next(s for s in stack.services if s.name == "api")
        port = stack.ports["api"]
        time.sleep(1)
        m = _mem(api.pid)
        print(f"API pid {api.pid}: at rest RSS {m['VmRSS']:.0f} MB, peak {m['VmHWM']:.0f} MB")
        for path, mb, kind, key in [("/v1/s3-events", 16, "json", None), ("/v1/jobs", 40, "json", None),
                                    ("/v1/photos", 300, "multipart", None), ("/v1/s3-events", 16, "json", stack.api_key),
                                    ("/v1/photos", 300, "multipart", stack.api_key)]:
            status = _send(port, path, mb, kind, spool, api.pid, key)
            time.sleep(0.5)
            m = _mem(api.pid)
            print(f"{path:14s} {mb:4d} MB {'key   ' if key else 'no key'} -> {status:58s} "
                  f"API RSS {m['VmRSS']:.0f} MB, peak {m['VmHWM']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
