"""Alert webhooks: Alertmanager-compatible JSON to webhook receivers or an Alertmanager."""

from __future__ import annotations

from ebbflow.plugins import Plugin, PluginContext

from .config import WebhookConfig, WebhookTarget
from .output import WebhookOutput


def create(ctx: PluginContext, config: WebhookConfig) -> WebhookOutput:
    return WebhookOutput(ctx.bus, config, ctx.clock)


plugin: Plugin[WebhookConfig, WebhookOutput] = Plugin("webhook", WebhookConfig, create)

__all__ = ["WebhookConfig", "WebhookOutput", "WebhookTarget", "plugin"]
