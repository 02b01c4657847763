"""The embedded stack of `make run`: moto in-process, resources from infra/, the API, tick and pumps.

Loading this package is what makes a process the local stack: from then on, the containers of the local
stage are built with their stand-ins (`chalicelib.local.container`). Nothing deployed imports it
(tests/unit/test_local_code.py)."""

from chalicelib import wiring
from chalicelib.local.container import build_container

wiring.use_container(build_container)
