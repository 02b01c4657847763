"""`make run`: the whole Relais suite on this machine, on an embedded moto AWS. Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import sys
import threading
from types import FrameType

from chalicelib.local.stack import start


def main() -> int:
    port = int(os.environ.get("PORT", "8000"))
    moto_port = int(os.environ.get("MOTO_PORT", "5000"))
    stack = start(port=port, moto_port=moto_port)
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    sys.stdout.write(
        f"""
Relais is running locally.
  API            {stack.api_url}
  embedded AWS   {stack.moto_url}   (moto: DynamoDB, SQS, SES, S3)
  outbox         {stack.api_url}/_local/outbox
  demo account   {stack.demo_account_id}  (plan premium)

  admin token (demo account):
    {stack.admin_token}
  manager token (demo account):
    {stack.manager_token}
  platform_admin token:
    {stack.platform_admin_token}

Try:  curl -s {stack.api_url}/account -H "Authorization: Bearer $ADMIN_TOKEN"
The ticks (dunning_tick, webhook_tick) run every minute and queued messages are delivered every second.
Ctrl-C stops everything.
"""
    )
    sys.stdout.flush()
    stopped.wait()
    sys.stdout.write("Stopping Relais...\n")
    stack.stop()
    sys.stdout.write("Stopped.\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
