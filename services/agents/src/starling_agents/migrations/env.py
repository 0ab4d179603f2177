from starling_agents.models import AgentsBase
from starling_core.migrations import run_env

run_env(AgentsBase.metadata)
