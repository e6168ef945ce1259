"""Bad input gets a clear InputError naming the item; loaders read real files."""

import warnings

import numpy as np
import pytest

import gemb.model as gm
from gemb.errors import InputError


@pytest.fixture(scope="module")
def enc():
  return gm.load("tiny")


def _err(enc, items, *patterns, **kw):
  with pytest.raises(InputError) as e:
    enc.embed(items, **kw)
  msg = str(e.value)
  for p in patterns:
    assert p in msg, msg
  return msg


def test_empty_text(enc):
  _err(enc, ["fine", "   "], "Item 1", "empty text")
  _err(enc, ["fine", ["ok", ""]], "Item 1, part 1", "empty text")


def test_image_rank_channels_dtype(enc):
  _err(enc, ["x", gm.Image(np.zeros((8, 8), np.uint8))], "Item 1", "rank 3", "(8, 8)")
  _err(enc, [gm.Image(np.zeros((8, 8, 2), np.uint8))], "Item 0", "4 (RGBA) channels", "got 2")
  _err(enc, [gm.Image(np.zeros((8, 8, 3), np.int64))], "Item 0", "dtype", "int64")
  _err(enc, [gm.Image(np.full((8, 8, 3), 2.0, np.float32))], "Item 0", "[0, 1]")


def test_audio_nan_inf_and_rate(enc):
  w = np.zeros(1600, np.float32)
  w[3] = np.nan
  _err(enc, ["a", "b", gm.Audio(w, 16000)], "Item 2", "NaN or inf")
  w[3] = np.inf
  _err(enc, [gm.Audio(w, 16000)], "Item 0", "NaN or inf")
  _err(enc, [gm.Audio(np.zeros(1600, np.float32), 12345)], "Item 0", "unsupported sample rate",
       "12345", "16000")


def test_zero_length_video(enc):
  _err(enc, ["a", gm.Video(np.zeros((0, 8, 8, 3), np.uint8), 4.0)], "Item 1", "zero-length video")


def test_over_length_error_and_truncation(enc):
  long_text = "x" * 500  # bytes tokenizer: 500 tokens > tiny's 128
  msg = _err(enc, ["short", long_text], "Item 1", "502 tokens", "allows 128", "truncate=True")
  assert "tiny" in msg
  trunc = gm.load("tiny(truncate=True)")
  vid = gm.Video(np.zeros((4, 16, 16, 3), np.uint8))  # 4 frames × 4 patches = 16 tokens
  with pytest.warns(gm.TruncationWarning, match=r"Item 0 \(text\+video\) kept 128 of 518 tokens"):
    e = trunc.embed([[vid, long_text]])
  assert e.shape == (1, 64) and np.isfinite(e).all()
  # Truncation equals embedding the already-cut text, and text is cut with a warning too.
  with pytest.warns(gm.TruncationWarning, match=r"Item 0 \(text\) kept 128 of 502 tokens"):
    a = trunc.embed([long_text])
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    b = trunc.embed(["x" * 126])  # fits: no warning
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_wrong_item_types(enc):
  _err(enc, [3.5], "Item 0", "expected str")
  _err(enc, [["a", ["nested"]]], "Item 0, part 1", "no nesting")
  _err(enc, [[]], "Item 0", "at least one part")
  with pytest.raises(InputError, match="list of items"):
    enc.prepare("just a string")  # embed("...") gives one vector; prepare builds a batch
  with pytest.raises(InputError, match="output size 64"):
    enc.embed(["a"], dim=65)
  with pytest.raises(InputError, match="task"):
    enc.embed(["a"], task="")


def test_loaders(tmp_path):
  from PIL import Image as PILImage
  import soundfile
  rng = np.random.default_rng(0)
  px = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
  PILImage.fromarray(px).save(tmp_path / "a.png")
  im = gm.load_image(tmp_path / "a.png")
  np.testing.assert_array_equal(im.pixels, px)
  PILImage.fromarray(px).convert("L").save(tmp_path / "g.png")
  assert gm.load_image(tmp_path / "g.png").pixels.shape == (12, 10, 3)  # grayscale → RGB

  wave = (0.5 * np.sin(np.arange(8000) / 10)).astype(np.float32)
  for ext in ("wav", "flac", "ogg"):
    soundfile.write(tmp_path / f"a.{ext}", np.stack([wave, wave], 1), 16000)
    au = gm.load_audio(tmp_path / f"a.{ext}")
    assert au.sample_rate == 16000 and au.waveform.ndim == 1
    assert abs(len(au.waveform) - 8000) <= 1024  # ogg may pad a little
    tol = 0.1 if ext == "ogg" else 1e-3
    np.testing.assert_allclose(au.waveform[:4000], wave[:4000], atol=tol)

  frames = [PILImage.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)) for _ in range(5)]
  frames[0].save(tmp_path / "v.gif", save_all=True, append_images=frames[1:], duration=200)
  v = gm.load_video(tmp_path / "v.gif")
  assert v.frames.shape == (5, 16, 16, 3) and v.fps == pytest.approx(5.0)
  d = tmp_path / "seq"
  d.mkdir()
  for i, f in enumerate(frames[:3]):
    f.save(d / f"{i:03d}.png")
  v2 = gm.load_video(d, fps=2.0)
  assert v2.frames.shape == (3, 16, 16, 3) and v2.fps == 2.0
  np.testing.assert_array_equal(v2.frames[1], np.asarray(frames[1]))
  with pytest.raises(InputError, match="x.mp4: no such file"):
    gm.load_video(tmp_path / "x.mp4")


def test_missing_ffmpeg_package_is_named(tmp_path, monkeypatch):
  import sys
  (tmp_path / "x.mp4").write_bytes(b"not a video")
  monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # as if it were not installed
  with pytest.raises(InputError, match="imageio-ffmpeg"):
    gm.load_video(tmp_path / "x.mp4")
