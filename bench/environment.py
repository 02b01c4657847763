"""The local stage's environment without an AWS endpoint, as tests/conftest.py sets it for the test suite.

Both benches need it: the AWS-call count runs the app in this process on moto's in-process mock (which
intercepts calls only when no endpoint is set), and the cold import times fresh interpreters started with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from chalicelib.local.stack import local_environment


def local_stage_environment() -> dict[str, str]:
    environment = {**os.environ, **local_environment(moto_url="")}
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        environment.pop(name, None)
    return environment


def deployed_stage_environment() -> dict[str, str]:
    """What a Lambda of the prod stage imports the app with: no local-only routes."""
    return {**local_stage_environment(), "RELAIS_STAGE": "prod"}


@contextmanager
def local_stage() -> Iterator[None]:
    """This process runs in the local stage's environment, restored afterwards for the next bench."""
    saved = dict(os.environ)
    stage = local_stage_environment()
    os.environ.clear()
    os.environ.update(stage)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
