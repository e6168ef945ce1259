"""Dataset cards: where a dataset comes from, under which licence, and how big each split is."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DatasetCard:
  name: str
  description: str
  source: str  # where the material comes from (package, font, generator)
  license: str
  sizes: dict[str, int]  # split name -> number of examples
  rebuild: str = ""  # the command that regenerates any committed asset

  def summary(self) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
    return f"{self.name}: {self.description} [{sizes}] ({self.license}; {self.source})"
