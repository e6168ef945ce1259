"""interleaved: items that mix image and text in one input (multimodal retrieval).

``kind="composed"`` (composed image retrieval): an emoji image plus a text modifier -> the target
image. The modifiers are real Unicode variations: a skin tone ("with dark skin tone"), removing
it ("with the default yellow skin"), or a gender ("as a woman": person shrugging -> woman
shrugging). The hard negative is the same base in another variant.

``kind="vqa"``: an emoji image plus a question -> the answer text: its name, its topic, or (for
toned emoji) its skin tone. Answers shared by many queries (topics, tones) are one corpus entry.
"""

from __future__ import annotations

import gemb.registry
from gemb.data.base import (PairSource, check_split, describe, filter_decodable,
                             stable_choice)
from gemb.data.emoji import bank, card_for
from gemb.errors import ConfigError

TASKS = {"composed": "search result", "vqa": "question answering"}  # the task of each kind

SIZES = {"composed": {"train": 1010, "validation": 101, "test": 151},
         "vqa": {"train": 3598, "validation": 502, "test": 492}}
QUESTIONS = {"name": "What is this emoji called?",
             "topic": "What kind of thing does this emoji show?",
             "tone": "Which skin tone does this emoji have?"}


def _sizes_text(source: str) -> str:
  return " ".join(f"{k}={v}" for k, v in SIZES[source].items())


def _composed_records(b, ids: list[int]) -> list[dict]:
  in_split = set(ids)
  untoned = {b.records[i]["names"]["en"]: i for i in ids if not b.records[i]["tone"]}
  tones_of: dict[str, list[int]] = {}
  for i in ids:
    if b.records[i]["tone"]:
      tones_of.setdefault(b.records[i]["base"], []).append(i)
  out = []
  for base, toned in tones_of.items():
    bi = b.index.get(base)
    if bi is None or bi not in in_split:
      continue
    for t in toned:
      tone = b.records[t]["tone"]
      others = [j for j in toned if j != t]
      out.append({"src": bi, "text": f"with {tone}", "dst": t, "negatives": others + [bi]})
      out.append({"src": t, "text": "with the default yellow skin", "dst": bi,
                  "negatives": others})
  for name, i in untoned.items():
    for g in ("man", "woman"):
      if not name.startswith(g + " "):
        continue
      rest = name[len(g) + 1:]
      src = untoned.get("person " + rest, untoned.get(rest))
      if src is None:
        continue
      other = untoned.get(("woman " if g == "man" else "man ") + rest)
      out.append({"src": src, "text": f"as a {g}", "dst": i,
                  "negatives": [j for j in (other, src) if j is not None]})
  for r in out:
    e = b.records[r["src"]]["emoji"]
    r.update(id=f"{e}+{r['text']}", group=b.group(r["src"]), task=TASKS["composed"],
             positive_id=b.records[r["dst"]]["emoji"])
  return out


def _vqa_records(b, ids: list[int]) -> list[dict]:
  out = []
  for i in ids:
    r = b.records[i]
    answers = {"name": r["names"]["en"], "topic": r["topic"], "tone": r["tone"]}
    for q, a in answers.items():
      if not a or (q == "topic" and a == "other"):
        continue
      out.append({"id": f"{r['emoji']}?{q}", "group": b.group(i), "task": TASKS["vqa"], "positive_id": f"{q}:{a}", "src": i, "question": q, "answer": a})
  by_q: dict[str, list[str]] = {}
  for r in out:
    by_q.setdefault(r["question"], [])
    if r["answer"] not in by_q[r["question"]]:
      by_q[r["question"]].append(r["answer"])
  for r in out:  # a wrong answer to the same question
    r["negatives"] = stable_choice(r["id"], by_q[r["question"]], 1, exclude=r["answer"])
  return out


@gemb.registry.datasets.register(
    "interleaved", description=describe(
        SIZES["composed"], "emoji image + text modifier -> image (kind='vqa': image + question "
        f"-> answer, {_sizes_text('vqa')})"))
def interleaved(split: str = "train", kind: str = "composed", negatives: int = 1,
                limit: int | None = None, on_corrupt: str = "error") -> PairSource:
  """Interleaved image+text queries: composed image retrieval or visual question answering."""
  check_split(split, "interleaved")
  if kind not in SIZES:
    raise ConfigError(f"interleaved: kind must be one of {', '.join(SIZES)}, got {kind!r}.")
  b = bank()
  ids = b.in_split(split)
  records = _composed_records(b, ids) if kind == "composed" else _vqa_records(b, ids)
  for r in records:
    r["negatives"] = r["negatives"][:negatives]

  def materialize(r: dict) -> dict:
    from gemb.model.inputs import Image, Interleaved
    if kind == "composed":
      query = Interleaved([Image(b.image(r["src"])), r["text"]])
      pos, negs = Image(b.image(r["dst"])), [Image(b.image(j)) for j in r["negatives"]]
    else:
      query = Interleaved([Image(b.image(r["src"])), QUESTIONS[r["question"]]])
      pos, negs = r["answer"], list(r["negatives"])
    return {"query": query, "positive": pos, "negatives": negs, "task": r["task"], "id": r["id"],
            "group": r["group"], "positive_id": r["positive_id"]}

  def check(r: dict) -> None:
    for j in [r["src"], r.get("dst")] + (r["negatives"] if kind == "composed" else []):
      if j is not None:
        b.image(j)

  records, skipped = filter_decodable(records, check, on_corrupt, "interleaved")
  card = card_for("interleaved", f"emoji image + text ({kind})", SIZES[kind])
  return PairSource("interleaved", split, records, materialize, card, limit, skipped,
                    task=TASKS[kind])
