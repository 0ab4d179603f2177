"""What uvicorn serves: `uvicorn starling_reporting.main:app`, configured from the environment."""

from __future__ import annotations

from starling_reporting.app import create_app

app = create_app()
