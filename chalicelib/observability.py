"""Structured logs and EMF metrics through Powertools, shared by every function.

The service name is "relais-api", not the Chalice app name "relais": Chalice's own logger is named after
the app, and sharing the name would print every line twice.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "relais-api"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Relais", service=SERVICE)
