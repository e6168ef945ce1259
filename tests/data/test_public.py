"""Public-benchmark readers on tiny fixtures written in exactly the official layouts.

The fixtures give each image/video one flat colour; the references below are the colours and the
caption -> file mapping the test itself wrote, not anything the readers compute.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image as PILImage

import gemb
from gemb.errors import InputError
from gemb.evaluation import build_evaluator
from gemb.evaluation.runner import dataset_loader

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30), "purple": (150, 40, 160)}


def write_image(path, rgb, size=(40, 30)):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  PILImage.new("RGB", size, rgb).save(path, quality=95)


def karpathy(tmp_path, name, with_filepath):
  """Karpathy-style json: 'red' and 'green' in test, 'blue' in val, 'yellow' train, 'purple'
  restval; five captions each naming the colour."""
  splits = {"red": "test", "green": "test", "blue": "val", "yellow": "train", "purple": "restval"}
  images, truth = [], {}
  for k, (colour, split) in enumerate(splits.items()):
    sub = "val2014" if with_filepath else "flickr30k-images"
    filename = f"COCO_val2014_{k:012d}.jpg" if with_filepath else f"{1000 + k}.jpg"
    write_image(tmp_path / sub / filename, COLOURS[colour])
    entry = {"filename": filename, "imgid": k, "split": split, "sentids": list(range(5 * k, 5 * k + 5)),
             "sentences": [{"tokens": ["a", colour, "square"], "raw": f"A {colour} square, take {j}.",
                            "imgid": k, "sentid": 5 * k + j} for j in range(5)]}
    if with_filepath:
      entry.update(filepath="val2014", cocoid=500 + k)
    images.append(entry)
    truth[colour] = split
  (tmp_path / name).write_text(json.dumps({"images": images, "dataset": "coco"}))
  return truth


def colour_embed(items, task=None, dim=None):
  """Captions -> one-hot of the colour word; images/videos -> one-hot of the nearest colour."""
  names = list(COLOURS)
  ref = np.array([COLOURS[n] for n in names], float)
  out = np.zeros((len(items), len(names)), np.float32)
  for i, x in enumerate(items):
    if isinstance(x, str):
      out[i, [j for j, n in enumerate(names) if n in x][0]] = 1
    else:
      px = (x.pixels if hasattr(x, "pixels") else x.frames).reshape(-1, 3).mean(0)
      out[i, np.argmin(((ref - px) ** 2).sum(1))] = 1
  return out


@pytest.mark.parametrize("name,json_name,with_filepath", [
    ("coco", "dataset_coco.json", True), ("flickr30k", "dataset_flickr30k.json", False)])
def test_karpathy_readers(tmp_path, name, json_name, with_filepath):
  karpathy(tmp_path, json_name, with_filepath)
  spec = f"{name}(root={str(tmp_path)!r}, image_size=20)"
  test = gemb.datasets.build(spec, split="test")
  assert len(test) == 10  # 2 images x 5 captions
  assert len(gemb.datasets.build(spec, split="validation")) == 5
  assert len(gemb.datasets.build(spec, split="train")) == 10  # train + restval
  queries, corpus, qrels = test.retrieval_task()
  assert len(corpus) == 2 and len(queries) == 10
  for q, rel in zip(queries, qrels):
    (pos,) = rel
    px = corpus[pos].pixels
    assert min(px.shape[:2]) == 20  # shorter side resized to image_size
    colour = [c for c in COLOURS if c in q][0]
    assert np.abs(px.reshape(-1, 3).mean(0) - COLOURS[colour]).max() < 8  # JPEG tolerance
  # The eval recipe's spelling runs end to end through the MSCOCO evaluator.
  ev = build_evaluator({"kind": "mscoco", "dataset": spec, "split": "test"}, dataset_loader(None))
  scores = ev.evaluate(colour_embed)
  assert scores["text_to_image/R@1"] == 1.0
  assert scores["image_to_text/R@5"] == 1.0


def write_video(path, rgb, n=12):
  import imageio.v3 as iio
  os.makedirs(os.path.dirname(path), exist_ok=True)
  frames = np.broadcast_to(np.array(rgb, np.uint8), (n, 32, 48, 3)).copy()
  iio.imwrite(path, frames, fps=6, codec="libx264", macro_block_size=16)


def msrvtt_fixture(tmp_path):
  pytest.importorskip("imageio_ffmpeg")
  videos = {"video0": ("red", "train"), "video1": ("green", "validate"),
            "video7010": ("blue", "test"), "video7011": ("yellow", "test")}
  trainval, test = {"info": {}, "videos": [], "sentences": []}, {"info": {}, "videos": [],
                                                               "sentences": []}
  sen = 0
  for k, (vid, (colour, split)) in enumerate(videos.items()):
    target = test if split == "test" else trainval
    target["videos"].append({"category": 1, "url": "", "video_id": vid, "start time": 0.0,
                             "end time": 2.0, "split": split, "id": k})
    for j in range(3):
      target["sentences"].append({"caption": f"a {colour} screen {j}", "video_id": vid,
                                  "sen_id": sen})
      sen += 1
    write_video(str(tmp_path / ("TestVideo" if split == "test" else "TrainValVideo")
                    / f"{vid}.mp4"), COLOURS[colour])
  (tmp_path / "train_val_videodatainfo.json").write_text(json.dumps(trainval))
  (tmp_path / "test_videodatainfo.json").write_text(json.dumps(test))


def test_msrvtt_reader(tmp_path):
  msrvtt_fixture(tmp_path)
  spec = f"msrvtt(root={str(tmp_path)!r}, frames=4, frame_size=16)"
  assert len(gemb.datasets.build(spec, split="train")) == 3
  assert len(gemb.datasets.build(spec, split="validation")) == 3
  test = gemb.datasets.build(spec, split="test")
  queries, corpus, qrels = test.retrieval_task()
  assert len(queries) == 6 and len(corpus) == 2
  for q, rel in zip(queries, qrels):
    v = corpus[next(iter(rel))]
    assert v.frames.shape[0] == 4 and min(v.frames.shape[1:3]) == 16
    colour = [c for c in COLOURS if c in q][0]
    assert np.abs(v.frames.reshape(-1, 3).mean(0) - COLOURS[colour]).max() < 12
  ev = build_evaluator({"kind": "vatex", "dataset": spec, "split": "test"}, dataset_loader(None))
  assert ev.evaluate(colour_embed)["text_to_video/ndcg@10"] == pytest.approx(1.0)


def beir_fixture(tmp_path):
  corpus = [{"_id": "d1", "title": "Cats", "text": "cats purr"},
            {"_id": "d2", "title": "", "text": "dogs bark"},
            {"_id": "d3", "title": "Birds", "text": "birds sing"}]
  queries = [{"_id": "q1", "text": "what do cats do"}, {"_id": "q2", "text": "loud pets"},
             {"_id": "q3", "text": "unjudged query"}]
  (tmp_path / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
  (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
  (tmp_path / "qrels").mkdir()
  (tmp_path / "qrels" / "test.tsv").write_text(
      "query-id\tcorpus-id\tscore\nq1\td1\t2\nq2\td2\t1\nq2\td1\t1\nq2\td3\t0\n")
  (tmp_path / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq3\td3\t1\n")


def test_beir_reader_keeps_graded_qrels(tmp_path):
  beir_fixture(tmp_path)
  src = gemb.datasets.build(f"beir(root={str(tmp_path)!r})", split="test")
  queries, corpus, qrels = src.retrieval_task()
  assert corpus == ["Cats cats purr", "dogs bark", "Birds birds sing"]  # BEIR: title + " " + text
  assert queries == ["what do cats do", "loud pets"]  # q3 has no test judgements
  assert qrels == [{0: 2.0}, {1: 1.0, 0: 1.0}]  # the score-0 row is not relevant
  dev = gemb.datasets.build(f"beir(root={str(tmp_path)!r})", split="validation")
  assert dev.retrieval_task()[0] == ["unjudged query"]


@pytest.mark.parametrize("spec,expect", [
    ("coco()", "pass root="),
    ("coco(root='/nonexistent/coco')", "/nonexistent/coco"),
    ("msrvtt(root='{tmp}')", "train_val_videodatainfo.json"),
    ("beir(root='{tmp}')", "corpus.jsonl"),
    ("flickr30k(root='{tmp}')", "dataset_flickr30k.json"),
])
def test_missing_root_or_files_are_named(tmp_path, spec, expect):
  with pytest.raises(InputError, match=expect.replace("(", r"\(")):
    gemb.datasets.build(spec.format(tmp=tmp_path), split="train")


def test_malformed_files_name_path_and_layout(tmp_path):
  (tmp_path / "dataset_coco.json").write_text("{not json")
  with pytest.raises(InputError, match=r"dataset_coco\.json.*Karpathy"):
    gemb.datasets.build(f"coco(root={str(tmp_path)!r})", split="test")
  (tmp_path / "dataset_coco.json").write_text(json.dumps({"images": [{"split": "test"}]}))
  with pytest.raises(InputError, match=r"images\[0\] has no 'filename'"):
    gemb.datasets.build(f"coco(root={str(tmp_path)!r})", split="test")
  karpathy(tmp_path, "dataset_coco.json", True)
  os.remove(tmp_path / "val2014" / "COCO_val2014_000000000000.jpg")
  with pytest.raises(InputError, match=r"1 of 2 images are missing.*COCO_val2014_000000000000"):
    gemb.datasets.build(f"coco(root={str(tmp_path)!r})", split="test")
  beir_fixture(tmp_path)
  (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
  with pytest.raises(InputError, match=r"test\.tsv.*query-id\tcorpus-id\tscore"):
    gemb.datasets.build(f"beir(root={str(tmp_path)!r})", split="test")
  (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdX\t1\n")
  with pytest.raises(InputError, match=r"corpus-id 'dX' is not in"):
    gemb.datasets.build(f"beir(root={str(tmp_path)!r})", split="test")
  (tmp_path / "corpus.jsonl").write_text('{"_id": "d1"}\n')
  with pytest.raises(InputError, match=r"corpus\.jsonl.*line 1 has no 'text'"):
    gemb.datasets.build(f"beir(root={str(tmp_path)!r})", split="test")
