from tests.itemsapp import ItemBase

from starling_core.migrations import run_env

run_env(ItemBase.metadata)
