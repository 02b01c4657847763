"""Start and stop the whole suite on one machine: moto, resources, demo data, API server, tick and pumps."""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
import warnings
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import jwt.warnings

from chalicelib.domain.plans import Plan
from chalicelib.observability import logger

ROOT = Path(__file__).resolve().parents[2]
REGION = "eu-west-3"
DEMO_ADMIN_EMAIL = "cabinet@demo.relais.example"
TOKEN_LIFETIME = timedelta(days=30)
MOTO_ACCOUNT_ID = "123456789012"
"""moto's default AWS account: the local bucket is named after it, as the deployed one after the real one."""


def local_environment(moto_url: str) -> dict[str, str]:
    """The local stage's variables from .chalice/config.json, plus what points boto3 at moto."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    environment = {**config.get("environment_variables", {})}
    environment.update(config["stages"]["local"].get("environment_variables", {}))
    environment.update(
        {
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "RELAIS_DOCUMENTS_BUCKET": f"relais-local-documents-{MOTO_ACCOUNT_ID}",
            # Replaced by the address the API really binds (`start`); links point at it.
            "RELAIS_API_URL": "http://localhost:8000",
        }
    )
    return environment


@dataclass
class LocalStack:
    api_url: str
    moto_url: str
    demo_account_id: str
    admin_token: str
    manager_token: str
    platform_admin_token: str
    _stop: threading.Event
    _closers: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        self._stop.set()
        for close in reversed(self._closers):
            close()


def mint_token(secret: str, subject: str, role: str, account_id: str | None, lifetime: timedelta) -> str:
    from chalicelib.wiring import utc_now

    claims: dict[str, Any] = {"sub": subject, "role": role, "exp": utc_now() + lifetime}
    if account_id is not None:
        claims["account_id"] = account_id
    return jwt.encode(claims, secret, algorithm="HS256")


def _every(seconds: float, stop: threading.Event, name: str, work: Any) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(seconds):
            try:
                work()
            except Exception:
                logger.exception("local background job failed", extra={"job": name})

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread


def start(
    port: int = 8000,
    moto_port: int = 5000,
    host: str = "127.0.0.1",
    tick_seconds: float = 60.0,
    pump_seconds: float = 1.0,
) -> LocalStack:
    """Bring everything up and return once the API answers; `stop()` brings it all down."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # Locally metrics are switched off (no CloudWatch to read EMF) and the local JWT secret is the short
    # one API.md fixes: the warnings both would print on every request say nothing new.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", category=jwt.warnings.InsecureKeyLengthWarning)
    moto = ThreadedMotoServer(ip_address=host, port=moto_port, verbose=False)
    moto.start()
    moto_host, moto_bound = moto.get_host_and_port()
    moto_url = f"http://{moto_host}:{moto_bound}"
    # moto keeps its state per process: start from an empty AWS, as a fresh `make run` does.
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10)
    os.environ.update(local_environment(moto_url))

    from chalice.config import Config
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

    from chalicelib import wiring
    from chalicelib.handlers import dunning_tick, webhook_tick
    from chalicelib.local import pumps
    from chalicelib.local.gateway import RelaisRequestHandler
    from chalicelib.local.provision import provision
    from chalicelib.services import accounts as account_service

    wiring.reset()
    services = wiring.container()
    provision(services.client, account_id=_moto_account(), region=REGION)

    demo = account_service.create_account(
        account_service.NewAccount(
            name="Cabinet Démo Courtage",
            plan=Plan.PREMIUM,
            sender_email=DEMO_ADMIN_EMAIL,
            boosters=frozenset(),
        ),
        services.accounts,
        services.communications_queue,
        services.now(),
    )
    secret = services.settings.jwt_secret or ""

    import app as relais

    chalice_app: Any = relais.app
    if not isinstance(chalice_app, LocalChalice):
        CustomLocalChalice.__bases__ = (LocalChalice, chalice_app.__class__)
        chalice_app.__class__ = CustomLocalChalice
    config = Config.create(
        chalice_stage="local",
        app_name="relais",
        chalice_app=chalice_app,
        project_dir=str(ROOT),
        config_from_disk=json.loads((ROOT / ".chalice" / "config.json").read_text()),
    )
    server = LocalDevServer(chalice_app, config, host, port, handler_cls=RelaisRequestHandler)
    bound_port = server.server.server_address[1]
    # Links in emails (portal, unsubscribe) must open this very server, whatever port it got.
    os.environ["RELAIS_API_URL"] = f"http://{host}:{bound_port}"
    wiring.reset()
    server_thread = threading.Thread(target=server.server.serve_forever, name="api", daemon=True)
    server_thread.start()

    stop = threading.Event()
    ticker = _every(tick_seconds, stop, "dunning_tick", lambda: dunning_tick.run(wiring.container().now()))
    webhook_ticker = _every(
        tick_seconds, stop, "webhook_tick", lambda: webhook_tick.run(wiring.container().now())
    )
    pump = _every(pump_seconds, stop, "queue_pump", pumps.drain)

    def close_server() -> None:
        server.server.shutdown()
        server.server.server_close()
        server_thread.join(timeout=5)

    return LocalStack(
        api_url=f"http://{host}:{bound_port}",
        moto_url=moto_url,
        demo_account_id=demo.id,
        admin_token=mint_token(secret, "demo-admin", "admin", demo.id, TOKEN_LIFETIME),
        manager_token=mint_token(secret, "demo-manager", "manager", demo.id, TOKEN_LIFETIME),
        platform_admin_token=mint_token(secret, "platform-admin", "platform_admin", None, TOKEN_LIFETIME),
        _stop=stop,
        _closers=[
            moto.stop,
            close_server,
            lambda: ticker.join(timeout=5),
            lambda: webhook_ticker.join(timeout=5),
            lambda: pump.join(timeout=5),
        ],
    )


def _moto_account() -> str:
    from moto.core.models import DEFAULT_ACCOUNT_ID

    return str(DEFAULT_ACCOUNT_ID)
