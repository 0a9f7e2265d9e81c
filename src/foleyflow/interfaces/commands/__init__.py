"""Command modules, one per area (data, train, generate, edit, eval, bench, distill).

Each module imports the groups it extends from ``foleyflow.interfaces.cli`` and decorates
its commands onto them. ``load_all`` imports every module here, so adding a command is
adding a file: nothing else needs editing.
"""

import importlib
import pkgutil


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
