"""The one table the kit's and the textbook recipe's tests write to."""

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base


class Row(Base):
    __tablename__ = "rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
