"""The producer and the job schema must not pull in mxnet or the workers (checked in a clean process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["plateveil.schema", "producer.app", "producer.client"])
def test_import_does_not_load_mxnet_or_workers(module):
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('mxnet', 'workers', 'gluoncv', "
            "'onnxruntime'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []
