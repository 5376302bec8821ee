"""The local SQL mirror: engine state (Alembic-managed) and typed reporting tables."""
from .reporting import table_name
from .store import Counts, CursorState, EntityWriter, Mirror

__all__ = ["Counts", "CursorState", "EntityWriter", "Mirror", "table_name"]
