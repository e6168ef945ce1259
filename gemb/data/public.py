"""Readers for public benchmarks in their official layouts: you bring the files, gemb reads them.

* ``coco(root=)``: MSCOCO captions with Karpathy's split, ``<root>/dataset_coco.json`` and the
  images at ``<root>/<filepath>/<filename>`` (``train2014/``, ``val2014/``). The paper protocol is
  ``{"kind": "mscoco", "dataset": "coco(root='/data/coco')", "split": "test"}``: 25,000 captions
  against the 5,000 test images, text->image and image->text R@1/5/10.
* ``flickr30k(root=)``: the same Karpathy layout, ``<root>/dataset_flickr30k.json``, images in
  ``<root>/flickr30k-images/`` (or ``images/``, or the root itself); 5,000 captions, 1,000 images.
* ``msrvtt(root=)``: MSR-VTT 10k, ``<root>/train_val_videodatainfo.json`` and
  ``<root>/test_videodatainfo.json`` (``videos`` with ``video_id``/``split``, ``sentences`` with
  ``video_id``/``caption``), videos ``<video_id>.mp4`` in ``TrainValVideo/``, ``TestVideo/``,
  ``videos/all/``, ``videos/`` or the root. Splits "train", "validate" and "test" are gemb's
  train, validation and test; ``{"kind": "vatex", "dataset": "msrvtt(root=...)"}`` gives
  text->video NDCG@10 and R@1/5/10 over the 2,990 test videos.
* ``beir(root=)``: any BEIR / MTEB retrieval folder, ``corpus.jsonl`` (``_id``, ``title``,
  ``text``), ``queries.jsonl`` (``_id``, ``text``), ``qrels/<split>.tsv`` (header
  ``query-id	corpus-id	score``); gemb's "validation" reads ``qrels/dev.tsv``. Graded
  relevance is kept (score >= 1 is relevant, the score is NDCG's gain); a document is its
  title and text joined by a space, as BEIR does.

A missing root or file, or a file not in the layout, raises `InputError` naming the path and
what was expected. Images are resized on read so that their shorter side is `image_size` (224 by
default; None keeps them); a video is read as `frames` frames evenly spaced over the clip.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Callable, Sequence

import numpy as np

import gemb.registry
from gemb.data.base import PairSource, check_split
from gemb.data.card import DatasetCard
from gemb.errors import InputError

KARPATHY_SPLITS = {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}
MSRVTT_SPLITS = {"train": "train", "validation": "validate", "test": "test"}
BEIR_QRELS = {"train": "train", "validation": "dev", "test": "test"}
IMAGE_TASK = "text to image retrieval"
VIDEO_TASK = "text to video retrieval"
BEIR_TASK = "search result"


# -- shared: locating and parsing files ----------------------------------------------------------

def _root(name: str, root: str | None, expected: str) -> str:
  if not root:
    raise InputError(f"{name}: pass root='/path/to/{name}', the folder that holds {expected}.")
  root = os.path.expanduser(str(root))
  if not os.path.isdir(root):
    raise InputError(f"{name}: root {root!r} is not a folder; expected a folder holding "
                     f"{expected}.")
  return root


def _find(root: str, candidates: Sequence[str], name: str, what: str) -> str:
  for c in candidates:
    path = os.path.join(root, c)
    if os.path.isfile(path):
      return path
  raise InputError(f"{name}: no {what} under {root!r}; looked for "
                   f"{', '.join(repr(c) for c in candidates)}.")


def _load_json(path: str, name: str, layout: str) -> Any:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise InputError(f"{name}: cannot read {path!r} as JSON ({type(e).__name__}: {e}); expected "
                     f"{layout}.") from None


def _field(obj: Any, key: str, path: str, where: str, layout: str) -> Any:
  if not isinstance(obj, dict) or key not in obj:
    raise InputError(f"{path!r}: {where} has no {key!r}; expected {layout}.")
  return obj[key]


def _check_files(paths: Sequence[str], name: str, what: str) -> None:
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise InputError(f"{name}: {len(missing)} of {len(paths)} {what} are missing, e.g. "
                     f"{missing[:3]}. Put them where the annotation file says, or pass the "
                     "folder that holds them.")


def _image(path: str, size: int | None):
  from PIL import Image as PILImage

  from gemb.model.inputs import Image
  try:
    with PILImage.open(path) as im:
      im = im.convert("RGB")
      if size:
        s = size / min(im.size)
        im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                       PILImage.BICUBIC)
      return Image(np.asarray(im))
  except (OSError, ValueError) as e:
    raise InputError(f"cannot read image {path!r} ({type(e).__name__}: {e}).") from None


def _video(path: str, frames: int, size: int | None):
  """`frames` frames evenly spaced over the video at `path`, shorter side `size`."""
  from PIL import Image as PILImage

  from gemb.model.inputs import Video
  try:
    import imageio.v3 as iio
  except ImportError:
    raise InputError(f"reading {path!r} needs `pip install imageio imageio-ffmpeg`.") from None

  def small(frame) -> np.ndarray:
    im = PILImage.fromarray(np.asarray(frame)[..., :3])
    if size:
      s = size / min(im.size)
      im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))),
                     PILImage.BICUBIC)
    return np.asarray(im)

  try:
    meta = iio.immeta(path)
    all_frames = [small(f) for f in iio.imiter(path)]  # shrunk as read: a clip fits in memory
  except Exception as e:  # imageio raises many types for unreadable files
    raise InputError(f"cannot read video {path!r} ({type(e).__name__}: {e}).") from None
  if not all_frames:
    raise InputError(f"video {path!r} has no frames.")
  idx = np.linspace(0, len(all_frames) - 1, min(frames, len(all_frames))).round().astype(int)
  out = [all_frames[i] for i in idx]
  fps = float(meta.get("fps") or 1.0)
  duration = len(all_frames) / fps
  return Video(np.stack(out), fps=len(out) / duration if duration > 0 else 1.0)


def _card(name: str, description: str, source: str, license: str, sizes: dict) -> DatasetCard:
  return DatasetCard(name=name, description=description, source=source, license=license,
                     sizes=sizes, rebuild="(read in place from the files you downloaded)")


def _caption_source(name: str, split: str, captions: list[tuple[str, str, str]],
                    load: Callable[[str], Any], task: str, card: DatasetCard,
                    limit: int | None) -> PairSource:
  """A PairSource of (caption, media path, media id): caption -> media."""
  records = [{"id": f"{mid}/{j}", "group": mid, "task": task, "positive_id": mid,
              "caption": c, "path": p}
             for j, (c, p, mid) in enumerate(captions)]

  def materialize(r: dict) -> dict:
    return {"query": r["caption"], "positive": load(r["path"]), "negatives": [],
            "task": task, "id": r["id"], "group": r["group"], "positive_id": r["positive_id"]}

  return PairSource(name, split, records, materialize, card, limit, task=task)


# -- MSCOCO and Flickr30k: Karpathy's split json -------------------------------------------------

KARPATHY_LAYOUT = ('{"images": [{"filename": ..., "split": "train"|"restval"|"val"|"test", '
                   '"sentences": [{"raw": ...}, ...]}, ...]} (Karpathy\'s split json)')


def _karpathy(name: str, root: str | None, split: str, json_name: str,
              image_dirs: Sequence[str], image_size: int | None, limit: int | None,
              annotations: str | None, card: Callable[[dict], DatasetCard]) -> PairSource:
  check_split(split, name)
  root = _root(name, root, f"{json_name} and the images")
  path = annotations or _find(root, (json_name, f"karpathy/{json_name}",
                                     f"caption_datasets/{json_name}",
                                     f"annotations/{json_name}"), name, json_name)
  data = _load_json(path, name, KARPATHY_LAYOUT)
  images = _field(data, "images", path, "the top level", KARPATHY_LAYOUT)
  if not isinstance(images, list):
    raise InputError(f"{path!r}: 'images' is not a list; expected {KARPATHY_LAYOUT}.")
  captions, n_images = [], 0
  for k, im in enumerate(images):
    where = f"images[{k}]"
    if _field(im, "split", path, where, KARPATHY_LAYOUT) not in KARPATHY_SPLITS[split]:
      continue
    filename = _field(im, "filename", path, where, KARPATHY_LAYOUT)
    sub = im.get("filepath", "")
    dirs = [sub] if sub else list(image_dirs)
    file = next((os.path.join(root, d, filename) for d in dirs
                 if os.path.isfile(os.path.join(root, d, filename))),
                os.path.join(root, dirs[0], filename))
    mid = str(im.get("cocoid", im.get("imgid", filename)))
    sentences = _field(im, "sentences", path, where, KARPATHY_LAYOUT)
    n_images += 1
    for s in sentences:
      raw = _field(s, "raw", path, f"{where}.sentences", KARPATHY_LAYOUT)
      captions.append((str(raw).strip(), file, mid))
  if not captions:
    raise InputError(f"{name}: {path!r} has no captions in split {split!r} (Karpathy splits "
                     f"{KARPATHY_SPLITS[split]}).")
  _check_files(sorted({p for _, p, _ in captions}), name, "images")
  return _caption_source(name, split, captions, lambda p: _image(p, image_size), IMAGE_TASK,
                         card({split: len(captions), f"{split}_images": n_images}), limit)


@gemb.registry.datasets.register(
    "coco", description="MSCOCO captions, Karpathy split, read from root= (test: 25k captions, "
                        "5k images)")
def coco(split: str = "test", root: str | None = None, image_size: int | None = 224,
         limit: int | None = None, annotations: str | None = None) -> PairSource:
  """MSCOCO captions (Karpathy split) from `root`: dataset_coco.json + train2014/, val2014/."""
  return _karpathy("coco", root, split, "dataset_coco.json", ("val2014", "train2014", "images",
                                                              ""), image_size, limit,
                   annotations, lambda sizes: _card(
                       "coco", "MSCOCO caption -> image (Karpathy split)",
                       f"your files under {root}", "images: Flickr terms / CC (per image); "
                       "annotations: CC BY 4.0 (COCO consortium)", sizes))


@gemb.registry.datasets.register(
    "flickr30k", description="Flickr30k captions, Karpathy split, read from root= (test: 5k "
                             "captions, 1k images)")
def flickr30k(split: str = "test", root: str | None = None, image_size: int | None = 224,
              limit: int | None = None, annotations: str | None = None) -> PairSource:
  """Flickr30k captions (Karpathy split) from `root`: dataset_flickr30k.json + the images."""
  return _karpathy("flickr30k", root, split, "dataset_flickr30k.json",
                   ("flickr30k-images", "images", ""), image_size, limit, annotations,
                   lambda sizes: _card("flickr30k", "Flickr30k caption -> image (Karpathy split)",
                                       f"your files under {root}", "Flickr terms of use; "
                                       "non-commercial research", sizes))


coco.task = flickr30k.task = IMAGE_TASK


# -- MSR-VTT -------------------------------------------------------------------------------------

MSRVTT_LAYOUT = ('{"videos": [{"video_id": "video0", "split": "train"|"validate"|"test"}, ...], '
                 '"sentences": [{"video_id": "video0", "caption": ...}, ...]}')
MSRVTT_VIDEO_DIRS = ("TrainValVideo", "TestVideo", "videos/all", "videos", "")


@gemb.registry.datasets.register(
    "msrvtt", description="MSR-VTT 10k captions -> video, read from root= (test: 2,990 videos, "
                          "59,800 captions)")
def msrvtt(split: str = "test", root: str | None = None, frames: int = 8,
           frame_size: int | None = 224, limit: int | None = None) -> PairSource:
  """MSR-VTT from `root`: train_val_videodatainfo.json, test_videodatainfo.json, the .mp4s."""
  check_split(split, "msrvtt")
  root = _root("msrvtt", root, "train_val_videodatainfo.json, test_videodatainfo.json and the "
                               "videos")
  files = (("test_videodatainfo.json",) if split == "test" else ("train_val_videodatainfo.json",))
  path = _find(root, (*files, *(f"annotation/{f}" for f in files),
                      *(f"annotations/{f}" for f in files)), "msrvtt", files[0])
  data = _load_json(path, "msrvtt", MSRVTT_LAYOUT)
  videos = _field(data, "videos", path, "the top level", MSRVTT_LAYOUT)
  sentences = _field(data, "sentences", path, "the top level", MSRVTT_LAYOUT)
  wanted = set()
  for k, v in enumerate(videos):
    if _field(v, "split", path, f"videos[{k}]", MSRVTT_LAYOUT) == MSRVTT_SPLITS[split]:
      wanted.add(_field(v, "video_id", path, f"videos[{k}]", MSRVTT_LAYOUT))
  if not wanted:
    raise InputError(f"msrvtt: {path!r} has no videos with split "
                     f"{MSRVTT_SPLITS[split]!r}; expected {MSRVTT_LAYOUT}.")

  def video_path(vid: str) -> str:
    for d in MSRVTT_VIDEO_DIRS:
      p = os.path.join(root, d, f"{vid}.mp4")
      if os.path.isfile(p):
        return p
    return os.path.join(root, MSRVTT_VIDEO_DIRS[1 if split == "test" else 0], f"{vid}.mp4")

  paths = {vid: video_path(vid) for vid in sorted(wanted)}
  captions = []
  for k, s in enumerate(sentences):
    vid = _field(s, "video_id", path, f"sentences[{k}]", MSRVTT_LAYOUT)
    if vid in wanted:
      captions.append((str(_field(s, "caption", path, f"sentences[{k}]", MSRVTT_LAYOUT)).strip(),
                       paths[vid], vid))
  if not captions:
    raise InputError(f"msrvtt: {path!r} has no sentences for the {split} videos.")
  _check_files(sorted(paths.values()), "msrvtt", "videos")
  card = _card("msrvtt", "MSR-VTT caption -> video", f"your files under {root}",
               "MSR-VTT: research use (Microsoft); videos from YouTube",
               {split: len(captions), f"{split}_videos": len(wanted)})
  return _caption_source("msrvtt", split, captions, lambda p: _video(p, frames, frame_size),
                         VIDEO_TASK, card, limit)


msrvtt.task = VIDEO_TASK


# -- BEIR / MTEB retrieval -----------------------------------------------------------------------

class BeirSource(PairSource):
  """A BEIR folder's split: the whole corpus, the queries that have qrels, graded relevance."""

  def __init__(self, name, split, records, materialize, card, limit, corpus, queries, qrels):
    super().__init__(name, split, records, materialize, card, limit, task=BEIR_TASK)
    self.corpus, self.queries, self.qrels = corpus, queries, qrels  # ids -> text; qid -> {did: g}

  def retrieval_task(self, max_queries: int | None = None):
    doc_ids = list(self.corpus)
    pos = {d: i for i, d in enumerate(doc_ids)}
    qids = [q for q in self.queries if q in self.qrels]
    if max_queries:
      qids = qids[:max_queries]
    if not qids:
      raise InputError(f"{self.name}[{self.split}] has no queries with relevance judgements.")
    qrels = [{pos[d]: float(g) for d, g in self.qrels[q].items()} for q in qids]
    return [self.queries[q] for q in qids], [self.corpus[d] for d in doc_ids], qrels


def _jsonl(path: str, keys: Sequence[str], layout: str) -> list[dict]:
  out = []
  try:
    with open(path, encoding="utf-8") as f:
      for n, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          obj = json.loads(line)
        except json.JSONDecodeError as e:
          raise InputError(f"{path!r} line {n} is not JSON ({e}); expected one object a line, "
                           f"{layout}.") from None
        for k in keys:
          _field(obj, k, path, f"line {n}", layout)
        out.append(obj)
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(f"cannot read {path!r} ({type(e).__name__}: {e}).") from None
  return out


@gemb.registry.datasets.register(
    "beir", description="any BEIR / MTEB retrieval folder read from root= (corpus.jsonl, "
                        "queries.jsonl, qrels/test.tsv)")
def beir(split: str = "test", root: str | None = None, limit: int | None = None) -> PairSource:
  """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/{train,dev,test}.tsv; graded qrels."""
  check_split(split, "beir")
  root = _root("beir", root, "corpus.jsonl, queries.jsonl and qrels/test.tsv")
  corpus_path = _find(root, ("corpus.jsonl",), "beir", "corpus.jsonl")
  queries_path = _find(root, ("queries.jsonl",), "beir", "queries.jsonl")
  qrels_path = _find(root, (f"qrels/{BEIR_QRELS[split]}.tsv",), "beir",
                     f"qrels for split {split!r}")
  corpus_layout = '{"_id": ..., "title": ..., "text": ...}'
  corpus = {str(d["_id"]): (str(d.get("title") or "") + " " + str(d["text"])).strip()
            for d in _jsonl(corpus_path, ("_id", "text"), corpus_layout)}
  queries = {str(q["_id"]): str(q["text"])
             for q in _jsonl(queries_path, ("_id", "text"), '{"_id": ..., "text": ...}')}
  qrels: dict[str, dict[str, float]] = {}
  layout = "a tab-separated file with the header 'query-id\tcorpus-id\tscore'"
  try:
    with open(qrels_path, encoding="utf-8", newline="") as f:
      rows = list(csv.reader(f, delimiter="\t"))
  except (OSError, UnicodeDecodeError) as e:
    raise InputError(f"cannot read {qrels_path!r} ({type(e).__name__}: {e}).") from None
  if not rows or [c.strip() for c in rows[0][:3]] != ["query-id", "corpus-id", "score"]:
    raise InputError(f"{qrels_path!r}: the first line is {rows[0] if rows else 'missing'}; "
                     f"expected {layout}.")
  for n, row in enumerate(rows[1:], 2):
    if not row:
      continue
    try:
      q, d, g = row[0], row[1], float(row[2])
    except (IndexError, ValueError):
      raise InputError(f"{qrels_path!r} line {n}: {row!r}; expected {layout} and a numeric "
                       "score.") from None
    if q not in queries:
      raise InputError(f"{qrels_path!r} line {n}: query-id {q!r} is not in {queries_path!r}.")
    if d not in corpus:
      raise InputError(f"{qrels_path!r} line {n}: corpus-id {d!r} is not in {corpus_path!r}.")
    if g >= 1:
      qrels.setdefault(q, {})[d] = g
  if not qrels:
    raise InputError(f"{qrels_path!r} has no relevant pairs (score >= 1).")
  records = [{"id": f"{q}/{d}", "group": q, "task": BEIR_TASK, "positive_id": d, "q": q}
             for q in queries if q in qrels for d in qrels[q]]

  def materialize(r: dict) -> dict:
    return {"query": queries[r["q"]], "positive": corpus[r["positive_id"]], "negatives": [],
            "task": BEIR_TASK, "id": r["id"], "group": r["group"],
            "positive_id": r["positive_id"]}

  card = _card(f"beir:{os.path.basename(os.path.normpath(root))}",
               "BEIR-format retrieval: query -> documents, graded relevance",
               f"your files under {root}", "per dataset (see its BEIR / MTEB page)",
               {split: len(qrels), "corpus": len(corpus)})
  return BeirSource("beir", split, records, materialize, card, limit, corpus, queries, qrels)


beir.task = BEIR_TASK
