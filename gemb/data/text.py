"""text-pairs: text <-> text from real offline prose, built at run time.

Two sources, chosen by ``source=``:

- ``"docstrings"`` (default): Python stdlib docstrings, summary line -> the rest of the docstring
  (modules, classes and functions with a >= 15-word description); a title -> passage task like
  the retrieval sets embedding models train on. Split by module.
- ``"names"``: cross-lingual pairs, an emoji's English CLDR name -> its name in one of 13 other
  languages (bitext mining). Split by emoji, as in the `emoji` dataset.
"""

from __future__ import annotations

import gemb.registry
from gemb.data import stdlib
from gemb.data.base import PairSource, check_split, describe, split_of, stable_choice
from gemb.data.card import DatasetCard
from gemb.errors import ConfigError

SIZES = {"docstrings": {"train": 1555, "validation": 332, "test": 174},  # Python 3.11.7
         "names": {"train": 18216, "validation": 2599, "test": 2472}}


def docstring_pairs(root: str | None = None) -> list[stdlib.Definition]:
  seen, out = set(), []
  for d in stdlib.definitions(root):
    if (len(d.summary.split()) >= 4 and len(d.description.split()) >= 15
        and d.summary not in seen and d.description not in seen):
      seen.update((d.summary, d.description))
      out.append(d)
  return out


def _sizes_text(source: str) -> str:
  return " ".join(f"{k}={v}" for k, v in SIZES[source].items())


@gemb.registry.datasets.register(
    "text-pairs", description=describe(
        SIZES["docstrings"], "text <-> text: stdlib docstring summary -> description "
        f"(source='names': en -> 13 languages, {_sizes_text('names')})"))
def text_pairs(split: str = "train", source: str = "docstrings", negatives: int = 1,
               limit: int | None = None) -> PairSource:
  """Text <-> text: stdlib docstring summary -> description, or English -> other-language names."""
  check_split(split, "text-pairs")
  if source == "docstrings":
    defs = [d for d in docstring_pairs() if split_of(d.module) == split]
    by_module: dict[str, list[int]] = {}
    for i, d in enumerate(defs):
      by_module.setdefault(d.module, []).append(i)
    task = "search result"
    records = [{"id": f"{d.module}:{d.qualname}", "group": d.module, "task": task,
                "positive_id": f"{d.module}:{d.qualname}", "k": i,
                "negatives": stable_choice(f"{d.module}:{d.qualname}", by_module[d.module],
                                           negatives, exclude=i)}
               for i, d in enumerate(defs)]

    def materialize(r: dict) -> dict:
      d = defs[r["k"]]
      return {"query": d.summary, "positive": d.description,
              "negatives": [defs[j].description for j in r["negatives"]], "task": task,
              "id": r["id"], "group": r["group"], "positive_id": r["positive_id"]}

    src, lic = "Python standard library docstrings, parsed with ast at run time", "PSF License"
  elif source == "names":
    from gemb.data.emoji import bank
    b = bank()
    task = "sentence similarity"  # Gemini Embedding prompts bitext mining as this
    ids = [i for i in b.in_split(split) if not b.records[i]["tone"]]
    records = []
    for i in ids:
      names = b.records[i]["names"]
      for lang in b.languages:
        if lang != "en" and lang in names and names[lang] != names["en"]:
          records.append({"id": f"{b.records[i]['emoji']}/{lang}", "group": b.group(i),
                          "task": task, "positive_id": f"{b.records[i]['emoji']}/{lang}",
                          "i": i, "lang": lang,
                          "negatives": stable_choice(f"{i}/{lang}", ids, negatives, exclude=i)})

    def materialize(r: dict) -> dict:
      return {"query": b.name(r["i"], "en"), "positive": b.name(r["i"], r["lang"]),
              "negatives": [b.name(j, r["lang"]) for j in r["negatives"]], "task": task,
              "id": r["id"], "group": r["group"], "positive_id": r["positive_id"],
              "lang": r["lang"]}

    src, lic = "Unicode CLDR emoji names via the `emoji` package (in assets/emoji.npz)", \
        "Unicode licence (CLDR)"
  else:
    raise ConfigError(f"text-pairs: source must be 'docstrings' or 'names', got {source!r}.")
  card = DatasetCard(name="text-pairs", description=f"text <-> text ({source}: {task})",
                     source=src, license=lic, sizes=SIZES[source],
                     rebuild="nothing to rebuild: derived at run time")
  return PairSource("text-pairs", split, records, materialize, card, limit, task=task)
