"""What uvicorn serves: `uvicorn starling_users.main:app`, configured from the environment."""

from starling_users.app import create_app

app = create_app()
