"""The HTTP layer: thin routes over the engine's services."""

from persona.api.app import create_app

__all__ = ["create_app"]
