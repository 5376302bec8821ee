"""The local SQL mirror: engine state (Alembic-managed) and typed reporting tables."""
from .db import exists as mirror_exists
from .locks import Locks
from .reporting import EntityOptions, table_name
from .store import Counts, CursorState, EntityWriter, Mirror

__all__ = ["Counts", "CursorState", "EntityOptions", "EntityWriter", "Locks", "Mirror", "mirror_exists", "table_name"]
