"""The agent console web app: REST API (/api/v1), health, metrics. Front door: create_app."""

from agent_console.app import create_app

__all__ = ["create_app"]
