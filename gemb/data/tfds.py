"""TFDS: export gemb's datasets as array_record TFDS datasets, and read any prepared TFDS dataset.

Both work without TensorFlow: the exported features are a uint8 `Tensor` of encoded bytes per
item (decoded here, in the pipeline) and `Text`, never the TF-encoded Image/Audio/Video types.

    gemb.data.tfds.export("emoji(languages=['en'])", data_dir="/data/tfds")   # -> gemb_emoji
    src = gemb.datasets.build("tfds(name='gemb_emoji', data_dir='/data/tfds')", split="test")
    src = gemb.datasets.build("tfds(name='coco_captions', adapter='coco_captions')", split="val")

`tfds(...)` reads through ``tfds.data_source`` (random access, so grain can shuffle and shard it)
and maps each raw example to a gemb pair with an *adapter* from `ADAPTERS` (a registry; plugins
add adapters through the entry-point group ``gemb.tfds_adapters``).
"""

from __future__ import annotations

import functools
import io
import re
from typing import Any, Callable, Mapping

import numpy as np

import gemb.registry
from gemb.data.base import SPLITS
from gemb.data.card import DatasetCard
from gemb.errors import ConfigError, InputError

ADAPTERS = gemb.registry.tfds_adapters  # `gemb list tfds_adapters`; plugins: gemb.tfds_adapters
TEXT_FIELDS = ("task", "id", "group", "positive_id")


# -- item codec ----------------------------------------------------------------------------------

def encode_item(item: Any) -> bytes:
  """A gemb item (str, Image, Audio, Video, Interleaved, or a list of items) as npz bytes."""
  from gemb.model import inputs as I
  arrays: dict[str, np.ndarray] = {}

  def put(prefix: str, x: Any) -> None:
    if isinstance(x, str):
      arrays[prefix + "text"] = np.frombuffer(x.encode(), np.uint8)
    elif isinstance(x, I.Text):
      put(prefix, x.text)
    elif isinstance(x, I.Image):
      arrays[prefix + "image"] = np.asarray(x.pixels)
    elif isinstance(x, I.Audio):
      arrays[prefix + "audio"] = np.asarray(x.waveform)
      arrays[prefix + "sample_rate"] = np.asarray(x.sample_rate)
    elif isinstance(x, I.Video):
      arrays[prefix + "video"] = np.asarray(x.frames)
      arrays[prefix + "fps"] = np.asarray(x.fps)
    elif isinstance(x, (I.Interleaved, list)):
      parts = x.parts if isinstance(x, I.Interleaved) else x
      arrays[prefix + ("interleaved" if isinstance(x, I.Interleaved) else "list")] = \
          np.asarray(len(parts))
      for j, p in enumerate(parts):
        put(f"{prefix}{j}.", p)
    else:
      raise InputError(f"Cannot export an item of type {type(x).__name__} to TFDS.")

  put("", item)
  buf = io.BytesIO()
  np.savez(buf, **arrays)  # media inside are already compact; compression would cost CPU
  return buf.getvalue()


def decode_item(data: bytes | np.ndarray) -> Any:
  from gemb.model import inputs as I
  raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
  with np.load(io.BytesIO(raw)) as z:
    arrays = {k: z[k] for k in z.files}

  def get(prefix: str) -> Any:
    if prefix + "text" in arrays:
      return arrays[prefix + "text"].tobytes().decode()
    if prefix + "image" in arrays:
      return I.Image(arrays[prefix + "image"])
    if prefix + "audio" in arrays:
      return I.Audio(arrays[prefix + "audio"], int(arrays[prefix + "sample_rate"]))
    if prefix + "video" in arrays:
      return I.Video(arrays[prefix + "video"], float(arrays[prefix + "fps"]))
    for kind in ("interleaved", "list"):
      if prefix + kind in arrays:
        parts = [get(f"{prefix}{j}.") for j in range(int(arrays[prefix + kind]))]
        return I.Interleaved(parts) if kind == "interleaved" else parts
    raise InputError(f"Undecodable exported item (keys {sorted(arrays)[:6]}).")

  return get("")


# -- export --------------------------------------------------------------------------------------

def tfds_name(spec: str) -> str:
  """``"spoken-names(...)"`` -> ``"gemb_spoken_names"`` (TFDS names are snake_case)."""
  name, _, _ = gemb.registry.parse_spec(spec)
  return "gemb_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def make_builder(spec: str, data_dir: str, splits: tuple[str, ...] = SPLITS,
                 limit: int | None = None, name: str | None = None):
  """A TFDS builder (array_record) for the gemb dataset `spec`; call `download_and_prepare()`."""
  import tensorflow_datasets as tfds
  name = name or tfds_name(spec)
  blob = lambda: tfds.features.Tensor(shape=(None,), dtype=np.uint8, encoding="bytes")
  card = gemb.datasets.build(spec, split=splits[0], limit=1).card

  def info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=f"gemb dataset {spec}: {card.description}",
        features=tfds.features.FeaturesDict({
            "query": blob(), "positive": blob(), "negatives": blob(),
            **{k: tfds.features.Text() for k in TEXT_FIELDS}}),
        homepage="https://github.com/", citation="",
        metadata=tfds.core.MetadataDict(source=card.source, license=card.license, spec=spec))

  def split_generators(self, dl_manager):
    return {s: self._generate_examples(s) for s in splits}

  def generate_examples(self, split):
    src = gemb.datasets.build(spec, split=split)
    for i in range(min(len(src), limit or len(src))):
      ex = src[i]
      yield i, {"query": np.frombuffer(encode_item(ex["query"]), np.uint8),
                "positive": np.frombuffer(encode_item(ex["positive"]), np.uint8),
                "negatives": np.frombuffer(encode_item(list(ex["negatives"])), np.uint8),
                **{k: str(ex[k]) for k in TEXT_FIELDS}}

  # Built per call with skip_registration: the same name may be exported to several folders.
  cls = type(name, (tfds.core.GeneratorBasedBuilder,), {
      "VERSION": tfds.core.Version("1.0.0"), "_info": info,
      "_split_generators": split_generators, "_generate_examples": generate_examples,
      # No download checksums to look up (also avoids tfds' code_path lookup, which needs the
      # optional importlib_resources package for classes defined inside packages).
      "url_infos": None, "__module__": __name__}, skip_registration=True)
  cls.name = name
  return cls(data_dir=data_dir, file_format="array_record")


def export(spec: str, data_dir: str, splits: tuple[str, ...] = SPLITS, limit: int | None = None,
           name: str | None = None) -> str:
  """Writes the gemb dataset `spec` as a prepared TFDS dataset; returns its folder."""
  b = make_builder(spec, data_dir, splits, limit, name)
  b.download_and_prepare()
  return str(b.data_dir)


# -- loading -------------------------------------------------------------------------------------

def _field(example: Mapping, path: str) -> Any:
  x: Any = example
  for key in path.split("/"):
    if not isinstance(x, Mapping) or key not in x:
      raise InputError(f"TFDS example has no field {path!r} (at {key!r}); its fields are "
                       f"{sorted(example)}. Pass the right key to the adapter.")
    x = x[key]
  return x


def _text(x: Any, index: int = 0) -> str:
  if isinstance(x, np.ndarray) and x.dtype == object or isinstance(x, (list, tuple)):
    x = list(x)[index]  # e.g. coco's several captions per image: take one
  if isinstance(x, np.ndarray):
    x = x.item()
  return x.decode() if isinstance(x, bytes) else str(x)


def _image(x: Any):
  from gemb.data.assets import decode_image
  from gemb.model.inputs import Image
  if isinstance(x, (bytes, np.bytes_)):
    return Image(decode_image(bytes(x)))
  x = np.asarray(x)
  if x.ndim == 2:
    x = x[..., None]
  if x.ndim != 3:
    raise InputError(f"TFDS image field has shape {x.shape}; expected H×W×C or encoded bytes.")
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return Image(np.ascontiguousarray(x[..., :3]))


@ADAPTERS.register("gemb")
def gemb_adapter(example: Mapping) -> dict:
  """Examples exported by `export`."""
  out = {k: decode_item(example[k]) for k in ("query", "positive", "negatives")}
  out.update({k: _text(example[k]) for k in TEXT_FIELDS})
  return out


@ADAPTERS.register("image_text")
def image_text(example: Mapping, image_key: str = "image", text_key: str = "caption",
               caption_index: int = 0, task: str = "search result",
               id_key: str | None = None) -> dict:
  """Any image-caption dataset: caption -> image."""
  text = _text(_field(example, text_key), caption_index)
  ident = _text(_field(example, id_key)) if id_key else text
  return {"query": text, "positive": _image(_field(example, image_key)), "negatives": [],
          "task": task, "id": ident, "group": ident, "positive_id": ident}


ADAPTERS.register("coco_captions", functools.partial(
    image_text, image_key="image", text_key="captions/text", id_key="image/id"),
    description="TFDS coco_captions: first caption -> image")


@ADAPTERS.register("text_pair")
def text_pair(example: Mapping, query_key: str = "query", positive_key: str = "positive",
              task: str = "search result") -> dict:
  """Any dataset with two text fields."""
  q, p = _text(_field(example, query_key)), _text(_field(example, positive_key))
  return {"query": q, "positive": p, "negatives": [], "task": task, "id": q, "group": q,
          "positive_id": p}


class _Records:
  """`TfdsPairs.records`: the light fields (id, group, positive_id, task) of each example, read
  on access (TFDS examples carry them beside the media, so each read decodes one example)."""

  def __init__(self, pairs: "TfdsPairs"):
    self._pairs = pairs

  def __len__(self) -> int:
    return len(self._pairs)

  def __getitem__(self, i):
    if isinstance(i, slice):
      return [self[j] for j in range(*i.indices(len(self)))]
    ex = self._pairs[i]
    return {k: ex.get(k) for k in TEXT_FIELDS}


class TfdsPairs:
  """A prepared TFDS split read through `tfds.data_source`, mapped to pairs by an adapter.

  Satisfies the dataset protocol (gemb.data.protocol): name, split, card, task, records,
  len/[i] and retrieval_task.
  """

  def __init__(self, source, adapter: Callable[[Mapping], dict], card: DatasetCard, split: str,
               task: str = "search result"):
    self._source, self._adapter, self.card, self.split = source, adapter, card, split
    self.name = card.name
    # The task its queries serve (the training and evaluation prompt), as the adapter names it.
    self.task = adapter(source[0])["task"] if len(source) else task
    self.records = _Records(self)

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict:
    if not -len(self) <= i < len(self):
      raise IndexError(f"{self.name}[{self.split}] has {len(self)} examples; index {i}.")
    return self._adapter(self._source[i])

  def retrieval_task(self, max_queries: int | None = None) -> tuple[list, list, list[dict]]:
    """Like `PairSource.retrieval_task`; reads the whole split once for the corpus."""
    pos: dict[str, int] = {}
    corpus, queries, qrels = [], [], []
    for i in range(len(self)):
      ex = self[i]
      if ex["positive_id"] not in pos:
        pos[ex["positive_id"]] = len(corpus)
        corpus.append(ex["positive"])
      if max_queries is None or len(queries) < max_queries:
        queries.append(ex["query"])
        qrels.append({pos[ex["positive_id"]]: 1.0})
    return queries, corpus, qrels


@gemb.registry.datasets.register(
    "tfds", description="any prepared TFDS dataset via tfds.data_source + a registered adapter")
def tfds_source(split: str = "train", name: str = "", data_dir: str | None = None,
                adapter: str | None = None, task: str = "search result") -> TfdsPairs:
  """Reads a prepared TFDS dataset (no download) and maps it to gemb pairs with `adapter`.

  `adapter` is a spec in `gemb.data.tfds.ADAPTERS` (default "gemb" for names starting with
  "gemb_", else the dataset's name when an adapter of that name exists). TFDS split names are
  used as given ("val" for coco_captions), so `split` is not limited to train/validation/test.
  `task` is the task name its queries carry (the prompt), unless the adapter's examples say.
  """
  import tensorflow_datasets as tfds
  if not name:
    raise ConfigError("tfds: give the TFDS dataset name, e.g. tfds(name='coco_captions').")
  if adapter is None:
    base = name.split("/")[0].split(":")[0]
    adapter = "gemb" if base.startswith("gemb_") else base
    if adapter not in ADAPTERS:
      raise ConfigError(f"tfds: no adapter for {name!r}; pass adapter=..., one of "
                        f"{', '.join(ADAPTERS.names())} (e.g. \"image_text(image_key='image', "
                        "text_key='caption')\").")
  fn = ADAPTERS.get(adapter)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
    source = builder.as_data_source(split=split)
  except Exception as e:  # tfds raises several types for "not prepared here"
    raise InputError(f"tfds: cannot read prepared dataset {name!r} split {split!r} from "
                     f"{data_dir or 'the default TFDS data_dir'} ({type(e).__name__}: "
                     f"{str(e)[:300]}). Prepare it first (it needs network: "
                     f"`tfds build {name}`), or export a gemb dataset with "
                     "gemb.data.tfds.export.") from None
  info = builder.info
  meta = dict(info.metadata or {})
  card = DatasetCard(
      name=name, description=(info.description or "").strip().splitlines()[0][:200]
      if info.description else name,
      source=meta.get("source", f"TFDS {name} at {data_dir or 'default data_dir'}"),
      license=meta.get("license", "see the dataset's TFDS page"),
      sizes={s: info.splits[s].num_examples for s in info.splits})
  return TfdsPairs(source, fn, card, split, task)


tfds_source.task = "search result"
