"""`bentoml build` packages the gateway offline from bentofile.yaml."""

from __future__ import annotations

import os
import subprocess
import sys

from djserve.settings import PROJECT_ROOT


def test_bentoml_build_works_offline(tmp_path):
    env = {**os.environ, "BENTOML_HOME": str(tmp_path), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", str(PROJECT_ROOT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    store = tmp_path / "bentos" / "dj-universe-gateway"
    bento = store / (store / "latest").read_text().strip()  # `latest` holds the newest tag
    src = bento / "src"
    for needed in ("bentos/service.py", "bentos/audio.py", "bentos/data/battles.json", "djserve/specs/judge.py", "clients/gateway.py"):
        assert (src / needed).is_file(), needed
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    assert "bentoml==1.4.39" in requirements and "tritonclient[grpc]==2.73.0" in requirements
    assert "/ai/judge/analyze" in (bento / "apis" / "openapi.yaml").read_text()
