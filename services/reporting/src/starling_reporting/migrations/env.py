from starling_core.migrations import run_env
from starling_reporting.models import ReportingBase

run_env(ReportingBase.metadata)
