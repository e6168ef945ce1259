"""The committed assets: size budget, content, and that the build scripts regenerate them."""

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gemb.data import assets

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_assets_are_compact_and_complete():
  sizes = {f: os.path.getsize(os.path.join(assets.ASSET_DIR, f))
           for f in os.listdir(assets.ASSET_DIR) if f.endswith(".npz")}
  assert set(sizes) == {"emoji.npz", "speech.npz", "openclipart.npz", "klettres.npz"}
  assert sum(sizes.values()) + os.path.getsize(os.path.join(assets.ASSET_DIR,
                                                            "cldr_emoji.json.gz")) < 22e6
  recs = assets.emoji_records()
  assert len(recs) > 2000 and len({r["emoji"] for r in recs}) == len(recs)
  assert all(len(r["names"]) >= 10 and r["names"]["en"] for r in recs[:100])
  clips = assets.speech_store().meta["records"]
  assert {c["lang"] for c in clips} == {"en", "de", "fr", "es"} and len(clips) == 1153


@pytest.mark.skipif(not os.path.exists(assets.FONT_PATH) or
                    importlib.util.find_spec("emoji") is None,
                    reason="needs apt fonts-noto-color-emoji and pip emoji (build-only)")
def test_emoji_builder_reproduces_committed_images(tmp_path):
  out = tmp_path / "emoji.npz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_emoji_assets.py"),
                  "--limit", "40", "--out", str(out)], check=True, capture_output=True)
  fresh = assets.BlobStore(str(out), "images", "")
  committed = assets.emoji_store()
  index = {r["emoji"]: i for i, r in enumerate(committed.meta["records"])}
  assert len(fresh) > 10
  for i, r in enumerate(fresh.meta["records"]):
    j = index[r["emoji"]]
    assert r == committed.meta["records"][j]
    assert _same_blob("images", fresh.blob(i), committed.blob(j))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs apt espeak-ng")
def test_synthesize_on_the_fly():
  w = assets.synthesize("hello world", "en-us", 16000)
  assert w.dtype == np.float32 and 0.5 < len(w) / 16000 < 3.0 and np.abs(w).max() > 0.05


def _committed_store(name):
  from gemb.data import klettres, openclipart
  return {"speech": assets.speech_store, "openclipart": lambda: openclipart.bank().store,
          "klettres": klettres.store}[name]()


def _same_blob(kind, fresh, committed):
  if kind == "images":  # same rendering (lossy WebP may differ by a level)
    a, b = (assets.decode_image(x).astype(int) for x in (fresh, committed))
    return np.abs(a - b).mean() < 1.0
  (a, sr), (b, _) = assets.decode_audio(fresh), assets.decode_audio(committed)
  return sr == 16000 and abs(len(a) - len(b)) < 400  # Opus frames: lengths within 25 ms


_HAS_SCIPY = importlib.util.find_spec("scipy") is not None
BUILDERS = [  # (asset, blob kind, records rebuilt, what the builder needs (build-only))
    pytest.param("speech", "audio", 3, marks=pytest.mark.skipif(
        shutil.which("espeak-ng") is None or not _HAS_SCIPY, reason="needs apt espeak-ng, pip scipy")),
    pytest.param("openclipart", "images", 4, marks=pytest.mark.skipif(
        not os.path.isdir("/usr/share/openclipart/png"), reason="needs apt openclipart-png")),
    pytest.param("klettres", "audio", 3, marks=pytest.mark.skipif(
        not os.path.isdir("/usr/share/klettres") or not _HAS_SCIPY,
        reason="needs apt klettres-data, pip scipy")),
]


@pytest.mark.parametrize("name,kind,n", BUILDERS)
def test_builder_reproduces_committed_records(tmp_path, name, kind, n):
  out = tmp_path / f"{name}.npz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", f"build_{name}_assets.py"),
                  "--limit", str(n), "--out", str(out)], check=True, capture_output=True)
  fresh, committed = assets.BlobStore(str(out), kind, ""), _committed_store(name)
  for i in range(n):
    assert fresh.meta["records"][i] == committed.meta["records"][i]
    assert _same_blob(kind, fresh.blob(i), committed.blob(i))


@pytest.mark.skipif(not os.path.isdir("/usr/share/unicode/cldr/common/annotations"),
                    reason="needs apt unicode-cldr-core (build-only)")
def test_cldr_builder_reproduces_committed_names(tmp_path):
  from gemb.data import cldr
  out = tmp_path / "cldr.json.gz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_cldr_assets.py"),
                  "--out", str(out)], check=True, capture_output=True)
  assert cldr.names.__wrapped__(str(out)) == cldr.names()
