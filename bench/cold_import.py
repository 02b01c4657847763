"""What importing the app adds to a Lambda cold start, relative to the least any boto3 function pays.

Each sample is the wall time of a fresh interpreter, around the whole subprocess: `import app` against
`import boto3` plus one DynamoDB client (Python's start-up, botocore's loaders and one client is the floor
of every function that talks to AWS). The ratio of the medians is the figure, so that it does not depend on
this machine's speed; the two are sampled alternately so that a slow moment of the machine hits both alike.
"""

from __future__ import annotations

import subprocess
import sys
import time
from statistics import median

from bench.environment import deployed_stage_environment
from bench.figures import Figure
from chalicelib.local.stack import ROOT

APP = "import app"
BASELINE = "import boto3; boto3.client('dynamodb', region_name='eu-west-3')"
RUNS = 11
TARGET_RATIO = 1.4


def _wall_ms(code: str, environment: dict[str, str]) -> float:
    start = time.perf_counter()
    ran = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    if ran.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed:\n{ran.stderr}")
    return elapsed * 1000


def run() -> list[Figure]:
    environment = deployed_stage_environment()
    # One unmeasured pass each: bytecode compiled, files in the page cache, as for every sample after.
    _wall_ms(APP, environment)
    _wall_ms(BASELINE, environment)
    app_ms: list[float] = []
    baseline_ms: list[float] = []
    for _ in range(RUNS):
        app_ms.append(_wall_ms(APP, environment))
        baseline_ms.append(_wall_ms(BASELINE, environment))
    app, baseline = median(app_ms), median(baseline_ms)
    return [
        Figure(
            name="cold_import_ratio",
            value=round(app / baseline, 2),
            target=TARGET_RATIO,
            better="lower",
            unit="x",
            issue=2,
            detail=f"median of {RUNS} fresh interpreters, the prod stage; 14: unchanged by the letters",
        ),
        Figure(
            name="cold_import_app_ms", value=round(app, 1), target=None, better="lower", unit="ms", issue=2
        ),
        Figure(
            name="cold_import_boto3_client_ms",
            value=round(baseline, 1),
            target=None,
            better="lower",
            unit="ms",
            issue=2,
        ),
    ]
