"""clips: short videos made from emoji images, with captions that say what moves (text -> video).

Each clip is rendered on the fly (numpy + Pillow, ~1 ms) from one real emoji image: a zoom in or
out, a pan left or right, a rotation either way, or a sequence of three emoji of one topic shown
one after another. Captions name the emoji and the motion, so the hard negative of a clip is the
*same* emoji moving differently: only the temporal order tells them apart.
"""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage

import gemb.registry
from gemb.data.base import (PairSource, check_split, describe, filter_decodable,
                             stable_choice)
from gemb.data.emoji import bank, card_for
from gemb.errors import ConfigError

MOTIONS = {
    "zoom_in": "zooming in on the {0}",
    "zoom_out": "zooming out from the {0}",
    "pan_right": "the {0} moving from left to right",
    "pan_left": "the {0} moving from right to left",
    "rotate_cw": "the {0} turning clockwise",
    "rotate_ccw": "the {0} turning counterclockwise",
    "sequence": "the {0}, then the {1}, then the {2}",
}
SIZES = {"train": 9996, "validation": 1414, "test": 1346}
FPS = 4.0


def render(images: list[np.ndarray], motion: str, frames: int = 8, size: int = 48) -> np.ndarray:
  """T×H×W×3 uint8 frames of `motion` applied to `images` (three for "sequence", else one)."""
  t = np.linspace(0.0, 1.0, frames)
  out = np.full((frames, size, size, 3), 255, np.uint8)
  if motion == "sequence":
    for k in range(frames):
      im = images[min(len(images) - 1, k * len(images) // frames)]
      out[k] = np.asarray(PILImage.fromarray(im).resize((size, size), PILImage.BILINEAR))
    return out
  src = PILImage.fromarray(images[0])
  for k, a in enumerate(t):
    if motion in ("zoom_in", "zoom_out"):
      s = 0.35 + 0.65 * (a if motion == "zoom_in" else 1.0 - a)
      side = max(2, int(round(size * s)))
      im = src.resize((side, side), PILImage.BILINEAR)
      canvas = PILImage.new("RGB", (size, size), (255, 255, 255))
      canvas.paste(im, ((size - side) // 2, (size - side) // 2))
    elif motion in ("pan_right", "pan_left"):
      side = size // 2
      im = src.resize((side, side), PILImage.BILINEAR)
      x = int(round((a if motion == "pan_right" else 1.0 - a) * (size - side)))
      canvas = PILImage.new("RGB", (size, size), (255, 255, 255))
      canvas.paste(im, (x, (size - side) // 2))
    elif motion in ("rotate_cw", "rotate_ccw"):
      angle = 270.0 * a * (-1 if motion == "rotate_cw" else 1)  # PIL: positive = counterclockwise
      canvas = src.resize((size, size), PILImage.BILINEAR).rotate(
          angle, resample=PILImage.BILINEAR, fillcolor=(255, 255, 255))
    else:
      raise ConfigError(f"clips: unknown motion {motion!r}; known: {', '.join(MOTIONS)}.")
    out[k] = np.asarray(canvas)
  return out


TASK = "search result"  # a caption searching for its video


@gemb.registry.datasets.register(
    "clips", description=describe(
        SIZES, "text -> video: emoji zooms, pans, rotations, topic sequences"))
def clips(split: str = "train", motions: tuple[str, ...] | None = None, frames: int = 8,
          size: int = 48, negatives: int = 1, limit: int | None = None,
          on_corrupt: str = "error") -> PairSource:
  """Captioned videos from emoji images: zoom, pan, rotate, or a sequence of related emoji."""
  check_split(split, "clips")
  motions = tuple(motions or MOTIONS)
  bad = [m for m in motions if m not in MOTIONS]
  if bad:
    raise ConfigError(f"clips: unknown motions {bad}; known: {', '.join(MOTIONS)}.")
  if frames < 2 or size < 8:
    raise ConfigError(f"clips: need frames >= 2 and size >= 8, got frames={frames}, size={size}.")
  b = bank()
  ids = [i for i in b.in_split(split) if not b.records[i]["tone"]]
  by_topic: dict[str, list[int]] = {}
  for i in ids:
    by_topic.setdefault(b.records[i]["topic"], []).append(i)
  single = [m for m in motions if m != "sequence"]
  records = []
  for i in ids:
    e = b.records[i]["emoji"]
    for m in motions:
      if m == "sequence":
        others = stable_choice(e + "/seq", by_topic[b.records[i]["topic"]], 2, exclude=i)
        if len(others) < 2:
          continue
        shown = [i, *others]
        neg = [[shown[2], shown[1], shown[0]]]  # the same emoji in reverse order
      else:
        shown = [i]
        neg = [[m2, i] for m2 in stable_choice(f"{e}/{m}", single, negatives, exclude=m)]
      records.append({"id": f"{e}/{m}", "group": b.group(i), "task": TASK,
                      "positive_id": f"{e}/{m}", "motion": m, "shown": shown,
                      "negatives": neg[:negatives]})

  def video(motion: str, shown: list[int]):
    from gemb.model.inputs import Video
    return Video(render([b.image(j) for j in shown], motion, frames, size), FPS)

  def caption(motion: str, shown: list[int]) -> str:
    return MOTIONS[motion].format(*(b.name(j) for j in shown))

  def materialize(r: dict) -> dict:
    if r["motion"] == "sequence":
      negs = [video("sequence", n) for n in r["negatives"]]
    else:
      negs = [video(n[0], [n[1]]) for n in r["negatives"]]
    return {"query": caption(r["motion"], r["shown"]), "positive": video(r["motion"], r["shown"]),
            "negatives": negs, "task": r["task"], "id": r["id"], "group": r["group"],
            "positive_id": r["positive_id"], "motion": r["motion"]}

  def check(r: dict) -> None:
    for j in r["shown"] + [x for n in r["negatives"] for x in n if isinstance(x, int)]:
      b.image(j)

  records, skipped = filter_decodable(records, check, on_corrupt, "clips")
  card = card_for("clips", "captioned videos rendered from emoji images (zoom/pan/rotate/"
                  "sequence); hard negative: same emoji, other motion", SIZES)
  return PairSource("clips", split, records, materialize, card, limit, skipped, task=TASK)
