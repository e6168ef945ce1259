"""Image, video and PDF-page throughput of `minilm-l6-effnet` (pretrained tower + backbone), and
gemb's EfficientNet-Lite0 tower against torch running the same network.

- ``images_per_s``: distinct random 224-px images through `Encoder.embed` (tower + backbone,
  float32), batch 64 (the tower runs it as two batches of 32, its largest compiled size). The
  feature cache is off (``cache_mb=0``), so every image costs the tower: a training run that
  revisits images pays the tower once per distinct image.
- ``image_tower_vs_torch``: images/s of gemb's tower alone (`tower_features`, jitted XLA) ÷
  images/s of torch running the same network (the `efficientnet-lite-pytorch` reference with the
  same weights, eval mode, `no_grad`), same batch, same thread count (torch's default = the
  cores, as XLA's CPU client uses), the two interleaved round by round. Only when torch and the
  reference are installed (`bash setup.sh mteb`).
- ``video_clips_per_s``: 8-frame 48-px clips (the built-in clips' shape); the preset samples 4
  frames a clip and runs each at 128 px pooled to 2×2 tokens.
- ``pdf_pages_per_s``: pages of a matplotlib-written PDF rendered by `gemb.load_pdf` and embedded
  one item per page (cache off); only when `gemb.load_pdf` exists.

Every system is warmed up first (compile time printed apart); medians over `--repeats` rounds;
the load average is printed before and after. The last printed line is one JSON object.

    python benchmarks/image_throughput.py [--n 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np


def _timed(fn) -> float:
  t = time.perf_counter()
  fn()
  return time.perf_counter() - t


def main() -> None:
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=256, help="images per round")
  ap.add_argument("--clips", type=int, default=64)
  ap.add_argument("--pages", type=int, default=12)
  ap.add_argument("--batch", type=int, default=64)
  ap.add_argument("--repeats", type=int, default=3)
  args = ap.parse_args()
  load0 = os.getloadavg()
  print(f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load0[0]:.2f}")

  import gemb
  import gemb.model as gm
  from gemb.model import efficientnet as E
  from gemb.model.tower_tokenizers import tower_features

  rng = np.random.default_rng(0)
  enc = gm.load("minilm-l6-effnet(image_tokenizer='effnet_image(cache_mb=0)', "
                "video_tokenizer='effnet_video(frame_size=128, grid=2, max_frames=4, cache_mb=0)')")
  fresh = lambda: [gm.Image(rng.random((224, 224, 3), dtype=np.float32)) for _ in range(args.n)]
  out: dict = {"n": args.n, "batch": args.batch, "repeats": args.repeats}

  def rate(make_items, what: str) -> float:
    """Items/s of `enc.embed` over fresh items each round (median), after a compiling warm-up."""
    t = _timed(lambda: enc.embed(make_items()[:args.batch], batch_size=args.batch))
    print(f"warm-up (compiles) {what}: {t:.1f}s")
    times = []
    for _ in range(args.repeats):
      items = make_items()
      times.append(_timed(lambda: enc.embed(items, batch_size=args.batch)))
    return round(len(items) / statistics.median(times), 2)

  out["images_per_s"] = rate(fresh, "images")
  print(f"images/s (tower + backbone, 224 px, batch {args.batch}): {out['images_per_s']}")

  # The tower alone vs torch, interleaved.
  x = rng.random((args.batch, 224, 224, 3), dtype=np.float32)
  tower_features("lite0", x)
  try:
    import torch
    from efficientnet_lite_pytorch import EfficientNet
  except ImportError:
    torch = None
    print("torch or efficientnet-lite-pytorch missing: image_tower_vs_torch skipped")
  if torch is not None:
    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(E.weights_path("lite0"), map_location="cpu",
                                   weights_only=True))
    ref.eval()
    xt = torch.from_numpy(((x - E.IMAGENET_MEAN) / E.IMAGENET_STD).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
      ref.extract_features(xt)
      ratios = []
      for _ in range(args.repeats):
        tg = _timed(lambda: tower_features("lite0", x))
        tt = _timed(lambda: ref.extract_features(xt))
        ratios.append(tt / tg)  # (batch / tg) / (batch / tt)
    out["image_tower_vs_torch"] = round(statistics.median(ratios), 3)
    out["torch_threads"] = torch.get_num_threads()
    print(f"tower ÷ torch (images/s, batch {args.batch}): {out['image_tower_vs_torch']}")

  clips = lambda: [gm.Video(rng.random((8, 48, 48, 3), dtype=np.float32), 4.0)
                   for _ in range(args.clips)]
  out["video_clips_per_s"] = rate(clips, "clips")
  print(f"video clips/s (8 frames, 4 sampled): {out['video_clips_per_s']}")

  load_pdf = getattr(gemb, "load_pdf", None) or getattr(gm, "load_pdf", None)
  if load_pdf is not None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, "doc.pdf")
      with PdfPages(path) as pdf:
        for i in range(args.pages):
          fig = plt.figure(figsize=(8.27, 11.69))
          fig.text(0.1, 0.9, f"Page {i}: " + "lorem ipsum " * 8)
          plt.plot(rng.random(20))
          pdf.savefig(fig)
          plt.close(fig)
      # load_pdf gives one Interleaved item of page Images; each page is embedded as an item
      # (a whole document's pages exceed one item's max_len).
      run_pages = lambda: enc.embed(list(load_pdf(path, max_pages=args.pages).parts),
                                    batch_size=args.batch)
      run_pages()
      times = [_timed(run_pages) for _ in range(args.repeats)]
      out["pdf_pages_per_s"] = round(args.pages / statistics.median(times), 2)
      print(f"PDF pages/s (load_pdf + embed): {out['pdf_pages_per_s']}")

  out["load_before"], out["load_after"] = round(load0[0], 2), round(os.getloadavg()[0], 2)
  print(json.dumps(out))


if __name__ == "__main__":
  main()
