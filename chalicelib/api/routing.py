"""The blueprint every resource family uses: each view is wrapped in the error boundary."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice.app import Blueprint

from chalicelib.errors import error_boundary


class ApiBlueprint(Blueprint):
    def route(self, path: str, **kwargs: Any) -> Callable[..., Any]:
        register = super().route(path, **kwargs)

        def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
            register(error_boundary(view))
            return view

        return decorator
