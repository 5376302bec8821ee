"""The ``syncengine`` command: the group lives in ``base``, each stage's commands in their own module.

Commands are joined here with ``add_command``, so no command module imports another (and none
imports this one): ``base`` ← ``setup``/``mirror``/``sync``/… ← ``__init__``.
"""
from __future__ import annotations

from . import conflicts, deletes, demo, emulate, explain, migrate, mirror, parked, serve, setup, sync, ui
from .base import main

for _command in (setup.init, setup.check, setup.discover, mirror.pull, mirror.status, mirror.db,
                 sync.plan_command, sync.apply_command, sync.sync_command, sync.undo_command,
                 conflicts.conflicts_group, deletes.deletes_group, migrate.migrate, serve.daemon, serve.webhooks,
                 emulate.emulate, demo.demo, ui.ui, parked.parked_group, explain.explain_command):
    main.add_command(_command)

__all__ = ["main"]
