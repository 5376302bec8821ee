"""``python -m syncengine.cli``."""
from syncengine.cli import main

main()
