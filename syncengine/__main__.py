"""``python -m syncengine`` is the ``syncengine`` command."""
from syncengine.cli import main

main()
