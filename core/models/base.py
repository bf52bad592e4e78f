from typing import TYPE_CHECKING, ClassVar

from sqlalchemy import Table
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Shared declarative base of every core table."""

    if TYPE_CHECKING:
        # Declared a FromClause by SQLAlchemy (a class may map a join or a select); ours each map a Table.
        __table__: ClassVar[Table]
