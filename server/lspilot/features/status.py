"""What runs and what it has cost: ``lspilot.status``, and ``lspilot.cancel`` for any job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lsprotocol import types

from lspilot import __version__
from lspilot.backends import backend_for
from lspilot.commands import CommandError, parse_token
from lspilot.features.base import Feature
from lspilot.usage import price_for

CANCEL_COMMAND = "lspilot.cancel"
STATUS_COMMAND = "lspilot.status"


class StatusFeature(Feature):
    commands = (CANCEL_COMMAND, STATUS_COMMAND)

    async def execute(self, params: types.ExecuteCommandParams) -> Any:
        handlers: dict[str, Callable[[], Any]] = {
            CANCEL_COMMAND: lambda: self.cancel(params.arguments),
            STATUS_COMMAND: self.status,
        }
        return handlers[params.command]()

    def cancel(self, arguments: Sequence[Any] | None) -> dict[str, Any]:
        target = arguments[0] if arguments else {}
        if not isinstance(target, dict):
            raise CommandError(
                "lspilot.cancel takes one object: {\"token\": T} for one action, {} for all."
            )
        jobs = self.services.jobs
        if target.get("token") is None:
            cancelled = [t for t, job in list(jobs.items()) if job.cancel()]
        else:
            token = parse_token(CANCEL_COMMAND, target["token"])
            job = jobs.get(token)
            cancelled = [token] if job is not None and job.cancel() else []
        return {"cancelled": cancelled}

    def status(self) -> dict[str, Any]:
        """The effective settings in brief (never the key), the running jobs, the session."""
        settings = self.services.store.settings
        backend = backend_for(settings)
        model = backend.model_name(settings)
        completion_model = backend.completion_model_name(settings)
        return {
            "version": __version__,
            "model": model,
            "completionModel": completion_model,
            "baseUrl": settings.base_url,
            "apiKeySet": settings.api_key is not None,
            "running": [
                {"token": token, "action": job.spec.action, "uri": job.spec.uri}
                for token, job in self.services.jobs.items() if job.spec.visible
            ],
            "session": self.services.meter.to_json(priced=self._priced_groups()),
            "upstream": self.services.upstream.to_json(),
            "mcpServers": self.services.mcp.status(),
        }

    def _priced_groups(self) -> set[str]:
        """The groups whose model has a price: ghost text and next edits ask the
        completion model, the rest the model."""
        settings = self.services.store.settings
        backend = backend_for(settings)
        models = {"actions": backend.model_name(settings), "chat": backend.model_name(settings),
                  "ghostText": backend.completion_model_name(settings),
                  "nextEdits": backend.completion_model_name(settings)}
        return {group for group, model in models.items()
                if price_for(model, settings.prices) is not None}
