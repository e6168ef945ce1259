"""code: Python standard library functions, docstring summary -> source without the docstring.

Built at run time from the interpreter's own stdlib (PSF licence) with `ast`; about 5.5k pairs on
Python 3.11, split by module so no module's functions cross splits. The hard negative of a pair
is another function of the same module (often a sibling method).
"""

from __future__ import annotations

import gemb.registry
from gemb.data import stdlib
from gemb.data.base import PairSource, check_split, describe, split_of, stable_choice
from gemb.data.card import DatasetCard

TASK = "code retrieval"
SIZES = {"train": 4371, "validation": 668, "test": 495}  # Python 3.11.7
MAX_CHARS = 4000


def pairs(root: str | None = None) -> list[stdlib.Definition]:
  """Documented functions with a >= 3-word summary and a body, one per distinct summary."""
  seen, out = set(), []
  for d in stdlib.definitions(root):
    if (d.kind == "function" and len(d.summary.split()) >= 3 and d.code.count("\n") >= 1
        and len(d.code) <= MAX_CHARS and d.summary not in seen):
      seen.add(d.summary)
      out.append(d)
  return out


@gemb.registry.datasets.register(
    "code", description=describe(
        SIZES, "Python stdlib docstring summary -> function source (built at run time)"))
def code(split: str = "train", negatives: int = 1, limit: int | None = None,
         stdlib_path: str | None = None) -> PairSource:
  """Python stdlib functions: docstring summary -> source without docstring, split by module."""
  check_split(split, "code")
  defs = [d for d in pairs(stdlib_path) if split_of(d.module) == split]
  by_module: dict[str, list[int]] = {}
  for i, d in enumerate(defs):
    by_module.setdefault(d.module, []).append(i)
  records = [{"id": f"{d.module}.{d.qualname}", "group": d.module, "task": TASK,
              "positive_id": f"{d.module}.{d.qualname}", "k": i,
              "negatives": stable_choice(d.module + d.qualname, by_module[d.module], negatives,
                                         exclude=i)}
             for i, d in enumerate(defs)]

  def materialize(r: dict) -> dict:
    d = defs[r["k"]]
    return {"query": d.summary, "positive": d.code,
            "negatives": [defs[j].code for j in r["negatives"]], "task": TASK, "id": r["id"],
            "group": r["group"], "positive_id": r["positive_id"]}

  card = DatasetCard(
      name="code", description="docstring summary -> Python function source (docstring removed)",
      source=f"the Python standard library at {stdlib_path or stdlib.stdlib_root()}, parsed "
             "with ast at run time", license="PSF License Agreement (Python)", sizes=SIZES,
      rebuild="nothing to rebuild: derived at run time")
  return PairSource("code", split, records, materialize, card, limit, task=TASK)
