"""Hard negatives mined by the model being trained (a stage's ``negatives="mined"``).

Before the stage, each task's training split is searched with the model as the stage starts:
its queries (with the task's prompt) against the distinct positives of the split (documents, no
prompt), through `gemb.retrievers`. For each query the nearest documents become its hard
negatives, except its known positives: every document whose content equals a positive that any
example of the same query content has (a caption shared by two images, an image filed under two
ids), which would otherwise be false negatives. `skip` also passes over the nearest few that
remain, a guard against positives the data does not label.

The result (`MinedNegatives`) is a training source like any other: the dataset's examples with
their ``negatives`` replaced. The mined positions are plain integers, so a run saves them and a
resumed run reuses them (`to_json` / `MinedNegatives.restore`) instead of mining with other
weights.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from gemb.data import protocol
from gemb.errors import InputError
from gemb.train.data import content_id

# embed(items, task) -> [n, d] embeddings (task None: documents, no prompt)
Embed = Callable[[list, "str | None"], np.ndarray]


class MinedNegatives:
  """`source` with each example's ``negatives`` replaced by mined documents: `docs[j]` for j in
  `negatives_of[i]` (positions into the split's distinct positives)."""

  def __init__(self, source: Any, docs: Sequence[Any], negatives_of: Sequence[Sequence[int]]):
    if len(negatives_of) != len(source):
      raise InputError(f"mined negatives for {len(negatives_of)} examples, but the source has "
                       f"{len(source)}; mine again for this split.")
    self.source, self.docs = source, list(docs)
    self.negatives_of = [list(map(int, n)) for n in negatives_of]
    self.task = source.task
    self.name = getattr(source, "name", type(source).__name__)
    self.split = getattr(source, "split", None)

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, i: int) -> dict:
    return self.example(i)

  def example(self, i: int, max_negatives: int | None = None) -> dict:
    """Example i with at most `max_negatives` of its mined negatives (the dataset's own are
    never decoded)."""
    ex = protocol.example(self.source, i, max_negatives=0)
    ex["negatives"] = [self.docs[j] for j in self.negatives_of[i][:max_negatives]]
    return ex

  def to_json(self) -> list[list[int]]:
    return self.negatives_of

  @classmethod
  def restore(cls, source: Any, negatives_of: Sequence[Sequence[int]]) -> "MinedNegatives":
    """The mined source again, from `to_json()`'s positions (a resumed run)."""
    docs = distinct_positives(source)[0]
    if any(j < 0 or j >= len(docs) for row in negatives_of for j in row):
      raise InputError(f"saved mined negatives point past the {len(docs)} documents of "
                       f"{getattr(source, 'name', 'the source')}; delete them to mine again.")
    return cls(source, docs, negatives_of)


def distinct_positives(source: Any) -> tuple[list[Any], list[int], list[dict]]:
  """(docs, doc_of_example, examples): the split's distinct positives by `positive_id`, which
  document each example's positive is, and the materialized examples."""
  examples = [protocol.example(source, i, max_negatives=0) for i in range(len(source))]
  docs, where, doc_of = [], {}, []
  for i, ex in enumerate(examples):
    key = ex.get("positive_id", f"#{i}")
    if key not in where:
      where[key] = len(docs)
      docs.append(ex["positive"])
    doc_of.append(where[key])
  return docs, doc_of, examples


def mine_hard_negatives(source: Any, embed: Embed, k: int, *, retriever: str = "exact",
                        skip: int = 0) -> MinedNegatives:
  """Up to `k` mined negatives per example of `source` (see the module docstring). `embed`
  embeds a list of items with a task prompt (queries) or none (documents); `retriever` is a
  `gemb.retrievers` spec."""
  import gemb.registry
  if k < 1 or skip < 0:
    raise InputError(f"mine_hard_negatives: need k >= 1 and skip >= 0, got k={k}, skip={skip}.")
  if len(source) == 0:
    raise InputError(f"{getattr(source, 'name', 'the source')} has no examples to mine for.")
  docs, doc_of, examples = distinct_positives(source)
  doc_cid = np.array([content_id(d) for d in docs])
  # Known positives of a query content: the content of every positive it is paired with.
  positive_cids: dict[int, set[int]] = {}
  for ex, j in zip(examples, doc_of):
    positive_cids.setdefault(content_id(ex["query"]), set()).add(int(doc_cid[j]))
  query_cid = [content_id(ex["query"]) for ex in examples]
  # Deep enough that k + skip candidates survive dropping each query's known positives.
  blocked = max(int(np.isin(doc_cid, list(s)).sum()) for s in positive_cids.values())
  depth = min(len(docs), k + skip + blocked)
  q_nd = np.asarray(embed([ex["query"] for ex in examples], source.task), np.float32)
  d_nd = np.asarray(embed(docs, None), np.float32)
  index = gemb.registry.retrievers.build(retriever).build(d_nd)
  found_nk, _ = index.search(q_nd, depth)
  negatives_of = []
  for i, row in enumerate(found_nk):
    known = positive_cids[query_cid[i]]
    kept = [int(j) for j in row if j >= 0 and int(doc_cid[j]) not in known]
    negatives_of.append(kept[skip:skip + k])
  return MinedNegatives(source, docs, negatives_of)
