"""The local SQL mirror: engine state (Alembic-managed) and typed reporting tables."""
from .locks import Locks
from .reporting import EntityOptions, table_name
from .store import Counts, CursorState, EntityWriter, Mirror

__all__ = ["Counts", "CursorState", "EntityOptions", "EntityWriter", "Locks", "Mirror", "table_name"]
