"""The registry server: REST API (`/api/v1`), web pages (`/`), one FastAPI app.

    registry serve [--host H] [--port P] [--workers N]

Routes call the same `registry.api.Registry` methods as the CLI.
"""

from registry.server.app import create_app

__all__ = ["create_app"]
