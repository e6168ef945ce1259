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
    a = assets.decode_image(fresh.blob(i)).astype(int)
    b = assets.decode_image(committed.blob(j)).astype(int)
    assert np.abs(a - b).mean() < 1.0  # same rendering (lossy WebP may differ by a level)


@pytest.mark.skipif(shutil.which("espeak-ng") is None or importlib.util.find_spec("scipy") is None,
                    reason="needs apt espeak-ng and pip scipy (build-only)")
def test_speech_builder_reproduces_committed_clips(tmp_path):
  out = tmp_path / "speech.npz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_speech_assets.py"),
                  "--limit", "3", "--out", str(out)], check=True, capture_output=True)
  fresh = assets.BlobStore(str(out), "audio", "")
  committed = assets.speech_store()
  for i in range(3):
    assert fresh.meta["records"][i] == committed.meta["records"][i]
    a, sr = assets.decode_audio(fresh.blob(i))
    b, _ = assets.decode_audio(committed.blob(i))
    assert sr == 16000 and abs(len(a) - len(b)) < 400


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs apt espeak-ng")
def test_synthesize_on_the_fly():
  w = assets.synthesize("hello world", "en-us", 16000)
  assert w.dtype == np.float32 and 0.5 < len(w) / 16000 < 3.0 and np.abs(w).max() > 0.05


@pytest.mark.skipif(not os.path.isdir("/usr/share/openclipart/png"),
                    reason="needs apt openclipart-png (build-only)")
def test_openclipart_builder_reproduces_committed_images(tmp_path):
  from gemb.data import openclipart
  out = tmp_path / "openclipart.npz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_openclipart_assets.py"),
                  "--limit", "4", "--out", str(out)], check=True, capture_output=True)
  fresh = assets.BlobStore(str(out), "images", "")
  committed = openclipart.bank().store
  for i in range(4):
    assert fresh.meta["records"][i] == committed.meta["records"][i]
    a = assets.decode_image(fresh.blob(i)).astype(int)
    b = assets.decode_image(committed.blob(i)).astype(int)
    assert np.abs(a - b).mean() < 1.0


@pytest.mark.skipif(not os.path.isdir("/usr/share/klettres") or
                    importlib.util.find_spec("scipy") is None,
                    reason="needs apt klettres-data and pip scipy (build-only)")
def test_klettres_builder_reproduces_committed_clips(tmp_path):
  from gemb.data import klettres
  out = tmp_path / "klettres.npz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_klettres_assets.py"),
                  "--limit", "3", "--out", str(out)], check=True, capture_output=True)
  fresh = assets.BlobStore(str(out), "audio", "")
  committed = klettres.store()
  for i in range(3):
    assert fresh.meta["records"][i] == committed.meta["records"][i]
    a, sr = assets.decode_audio(fresh.blob(i))
    b, _ = assets.decode_audio(committed.blob(i))
    assert sr == 16000 and abs(len(a) - len(b)) < 400


@pytest.mark.skipif(not os.path.isdir("/usr/share/unicode/cldr/common/annotations"),
                    reason="needs apt unicode-cldr-core (build-only)")
def test_cldr_builder_reproduces_committed_names(tmp_path):
  from gemb.data import cldr
  out = tmp_path / "cldr.json.gz"
  subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_cldr_assets.py"),
                  "--out", str(out)], check=True, capture_output=True)
  assert cldr.names.__wrapped__(str(out)) == cldr.names()
