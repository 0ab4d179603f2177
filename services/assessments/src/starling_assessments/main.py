"""What uvicorn serves (`starling_assessments.main:app`), configured from the environment."""

from starling_assessments.app import create_app

app = create_app()
