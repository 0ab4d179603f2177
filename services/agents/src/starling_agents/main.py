"""What uvicorn serves: `uvicorn starling_agents.main:app`, configured from the environment."""

from __future__ import annotations

from starling_agents.app import create_app

app = create_app()
