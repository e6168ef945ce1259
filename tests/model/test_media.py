"""Media as real files hold it: alpha, large images, frame rates, video soundtracks, PDF pages,
truncation that says what it cut, and inputs that must not be silently damaged (#15, #19)."""

import time
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage

import gemb
import gemb.model as gm
from gemb.errors import InputError
from gemb.model import tokenizers as T


@pytest.fixture(scope="module")
def enc():
  return gm.load("tiny")


@pytest.fixture(scope="module")
def trunc():
  return gm.load("tiny(truncate=True)")


def _rgba(seed=0, h=12, w=10):
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
  x[0, :, 3] = 0      # fully transparent row: a red the file keeps under it must not show
  x[0, :, :3] = (255, 0, 0)
  x[1, :, 3] = 255    # opaque row
  return x


def _pil_on(x, bg):
  """Reference: Pillow's own alpha_composite onto an opaque background."""
  base = PILImage.new("RGBA", (x.shape[1], x.shape[0]), tuple(bg) + (255,))
  return np.asarray(PILImage.alpha_composite(base, PILImage.fromarray(x, "RGBA")).convert("RGB"))


# -- 1. alpha ------------------------------------------------------------------------------------

def test_load_image_composites_alpha_like_pillow(tmp_path):
  x = _rgba()
  PILImage.fromarray(x, "RGBA").save(tmp_path / "a.png")
  im = gm.load_image(tmp_path / "a.png")
  assert (im.pixels[0] == 255).all()  # transparent → white, not the red under it
  np.testing.assert_allclose(im.pixels.astype(int), _pil_on(x, (255, 255, 255)), atol=1)
  grey = gm.load_image(tmp_path / "a.png", background=(128, 128, 128))
  np.testing.assert_allclose(grey.pixels.astype(int), _pil_on(x, (128, 128, 128)), atol=1)
  # A palette PNG with a transparent colour index is composited too.
  p = PILImage.fromarray(np.zeros((4, 4), np.uint8), "P")
  p.putpalette([255, 0, 0] * 256)
  p.save(tmp_path / "p.png", transparency=0)
  assert (gm.load_image(tmp_path / "p.png").pixels == 255).all()
  with pytest.raises(InputError, match="background"):
    gm.load_image(tmp_path / "a.png", background=(300, 0, 0))


def test_rgba_arrays_and_gif_frames_are_composited(tmp_path, enc):
  x = _rgba(1, 32, 32)
  on_white = _pil_on(x, (255, 255, 255))
  np.testing.assert_allclose(gm.composite_alpha(x).astype(int), on_white, atol=1)
  np.testing.assert_allclose(gm.composite_alpha(x.astype(np.float32) / 255) * 255, on_white,
                             atol=1)
  e = enc.embed([gm.Image(x), gm.Image(on_white)])
  np.testing.assert_allclose(e[0], e[1], atol=1e-5)
  frames = [PILImage.fromarray(_rgba(s, 16, 16), "RGBA") for s in range(3)]
  frames[0].save(tmp_path / "v.png", save_all=True, append_images=frames[1:], duration=250)
  v = gm.load_video(tmp_path / "v.png")  # animated PNG with alpha
  assert v.frames.shape == (3, 16, 16, 3) and (v.frames[:, 0] == 255).all()


# -- 2. fast resizing ----------------------------------------------------------------------------

def _slow_reference(x, h, w):
  """The earlier path: per channel in Pillow's float mode."""
  x = x.astype(np.float32) / 255
  return np.stack([np.asarray(PILImage.fromarray(x[..., c], mode="F").resize(
      (w, h), PILImage.BILINEAR)) for c in range(3)], -1)


def test_resize_matches_float_path_and_is_fast():
  yy, xx = np.mgrid[0:1123, 0:794]
  x = np.stack([xx * 255 // 794, yy * 255 // 1123, (xx + yy) % 256], -1).astype(np.uint8)
  out = gm.resize_rgb(x, 224, 224)
  assert out.shape == (224, 224, 3) and out.dtype == np.uint8
  ref = _slow_reference(x, 224, 224)
  err = np.abs(out / 255.0 - ref)
  assert err.mean() < 2 / 255 and np.median(err) <= 1 / 255
  best = min(_timed(gm.resize_rgb, x, 224, 224) for _ in range(50))  # min: robust to load
  assert best <= 0.010, f"resize took {best * 1e3:.1f} ms"


def _timed(f, *a):
  """CPU seconds of this thread (Pillow resizes in the calling thread): time spent waiting for a
  core on a loaded machine does not count."""
  t = time.thread_time()
  f(*a)
  return time.thread_time() - t


# -- 3. fps in the video tokens ------------------------------------------------------------------

def test_fps_changes_video_tokens_and_embedding(enc):
  frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
  tok = enc.video_tokenizer
  slow, fast = tok(frames, 1.0), tok(frames, 30.0)
  np.testing.assert_array_equal(slow.patches_np, fast.patches_np)
  assert slow.pos_n3[:, 0].tolist() != fast.pos_n3[:, 0].tolist()
  e = enc.embed([gm.Video(frames, fps=1), gm.Video(frames, fps=30)])
  assert not np.allclose(e[0], e[1], atol=1e-4)


# -- 4. video with its soundtrack ----------------------------------------------------------------

def _tone_mp4(path, seconds=1.0, fps=8, hz=440.0, sr=16000):
  import imageio_ffmpeg
  import soundfile
  t = np.arange(int(seconds * sr)) / sr
  soundfile.write(str(path) + ".wav", 0.5 * np.sin(2 * np.pi * hz * t), sr)
  gen = imageio_ffmpeg.write_frames(str(path), (16, 16), fps=fps, audio_path=str(path) + ".wav",
                                    audio_codec="aac", ffmpeg_log_level="error")
  gen.send(None)
  for i in range(int(seconds * fps)):
    gen.send(np.full((16, 16, 3), 30 * i, np.uint8).tobytes())
  gen.close()


def test_load_video_returns_frames_and_soundtrack(tmp_path):
  _tone_mp4(tmp_path / "tone.mp4")
  v = gemb.load_video(tmp_path / "tone.mp4")
  assert v.frames.shape[1:] == (16, 16, 3) and abs(len(v.frames) - 8) <= 1
  assert v.fps == pytest.approx(8.0)
  assert v.audio is not None and v.audio.sample_rate == 16000
  w = v.audio.waveform
  assert abs(len(w) / 16000 - 1.0) < 0.1
  spec = np.abs(np.fft.rfft(w))
  assert abs(np.argmax(spec) * 16000 / len(w) - 440) < 5  # the tone we wrote
  assert gemb.load_video(tmp_path / "tone.mp4", audio=False).audio is None


def test_video_with_soundtrack_is_one_time_ordered_item(tmp_path, enc):
  _tone_mp4(tmp_path / "tone.mp4")
  v = gemb.load_video(tmp_path / "tone.mp4")
  parts = enc._tokenize([v], None)[0].parts  # one item, [CLS] ... [SEP]
  mods = [p.modality for p in parts]
  assert set(mods) == {T.VIDEO, T.AUDIO} and len(mods) > 2  # interleaved, not two blocks
  starts = [p.pos_n3[0, 0] * (enc.video_tokenizer.time_step if p.modality == T.VIDEO
                              else enc.audio_tokenizer.time_step) for p in parts]
  assert starts == sorted(starts)  # one clock, in time order
  silent = gm.Video(v.frames, v.fps)
  e = enc.embed([v, silent])
  assert not np.allclose(e[0], e[1], atol=1e-4)


# -- 5. PDF pages --------------------------------------------------------------------------------

def _pdf(path, colours=("red", "green", "blue")):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.backends.backend_pdf import PdfPages
  with PdfPages(path) as pdf:
    for c in colours:
      fig = plt.figure(figsize=(4, 3))
      pdf.savefig(fig, facecolor=c)
      plt.close(fig)


def test_load_pdf_renders_pages(tmp_path, enc):
  _pdf(tmp_path / "d.pdf")
  doc = gemb.load_pdf(tmp_path / "d.pdf", size=64)
  assert isinstance(doc, gm.Interleaved) and len(doc.parts) == 3
  want = [(255, 0, 0), (0, 128, 0), (0, 0, 255)]  # matplotlib's named colours
  for im, rgb in zip(doc.parts, want):
    assert im.pixels.shape == (48, 64, 3)  # 4×3 inch page, longer side 64 px
    np.testing.assert_allclose(np.median(im.pixels.reshape(-1, 3), 0), rgb, atol=2)
  with pytest.warns(gm.TruncationWarning, match="kept the first 2 of 3 pages"):
    assert len(gemb.load_pdf(tmp_path / "d.pdf", max_pages=2, size=32).parts) == 2
  e = enc.embed([doc, "red page"])
  assert e.shape == (2, 64) and np.isfinite(e).all()


def test_broken_and_encrypted_pdf_name_the_file(tmp_path):
  _pdf(tmp_path / "ok.pdf", ("red",))
  good = (tmp_path / "ok.pdf").read_bytes()
  (tmp_path / "torn.pdf").write_bytes(good[:200])
  with pytest.raises(InputError, match="torn.pdf: it is not a readable PDF"):
    gemb.load_pdf(tmp_path / "torn.pdf")
  # A standard security handler whose user password is not empty: pdfium asks for it.
  locked = good.replace(b"trailer\n<<", b"trailer\n<< /Encrypt << /Filter /Standard /V 1 /R 2 /O <"
                        + b"ab" * 32 + b"> /U <" + b"cd" * 32 + b"> /P -4 >> /ID [<" + b"01" * 16
                        + b"><" + b"01" * 16 + b">]", 1)
  assert locked != good
  (tmp_path / "locked.pdf").write_bytes(locked)
  with pytest.raises(InputError, match="locked.pdf: it is password-protected"):
    gemb.load_pdf(tmp_path / "locked.pdf")
  with pytest.raises(InputError, match="no such file"):
    gemb.load_pdf(tmp_path / "absent.pdf")


# -- 6. truncation says what it cut --------------------------------------------------------------

def test_audio_past_max_seconds(enc, trunc):
  wave = np.zeros(3 * 16000, np.float32)  # tiny takes 2 s
  with pytest.raises(InputError, match=r"Item 0: audio is 3.00 s long .* at most 2 s"):
    enc.embed([gm.Audio(wave, 16000)])
  with pytest.warns(gm.TruncationWarning, match=r"audio kept 2.00 of 3.00 s \(32000 of 48000"):
    a = trunc.embed([gm.Audio(wave, 16000)])
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    b = trunc.embed([gm.Audio(wave[:32000], 16000)])
  np.testing.assert_allclose(a, b, atol=1e-6)


def test_long_video_and_long_text_warn_with_counts(trunc):
  frames = np.zeros((40, 16, 16, 3), np.uint8)  # 40 s at 1 fps; video_frames keeps 30 s
  with pytest.warns(gm.TruncationWarning, match=r"video kept 30.00 of 40.00 s \(31 of 40 frames"):
    trunc.embed([gm.Video(frames, fps=1.0)])
  words = " ".join(["word"] * 10_000)
  with pytest.warns(gm.TruncationWarning, match=r"Item 1 \(text\) kept 128 of 50001 tokens"):
    trunc.embed(["short", words])


def test_long_task_prompt_is_an_error_not_a_lost_query(trunc):
  with pytest.raises(InputError, match="task prompt .* cut the query away"):
    trunc.embed(["the query"], task="x" * 5000)
  trunc.embed(["the query"], task="search result")  # a normal task is fine


def test_saved_model_keeps_a_max_len_for_its_media():
  from gemb.model.encoder import keep_media_max_len, media_max_len
  e = gm.load("tiny(max_len=32)")
  au = e.audio_tokenizer  # 2 s at 16 kHz: 13 time patches × 2 frequency bands
  n_audio = len(au(np.zeros(32000, np.float32), 16000))
  assert n_audio == 26
  need = 2 + 4 * 4 + n_audio  # tiny video: 4 frames × 4 patches, plus a soundtrack
  assert media_max_len(e) == 64 >= need
  keep_media_max_len(e)
  assert e.config.max_len == 64
  e.embed([gm.Audio(np.zeros(32000, np.float32), 16000)])  # a whole 2 s clip fits, no error


# -- 7. no silent damage -------------------------------------------------------------------------

def _err(enc, items, *patterns, **kw):
  with pytest.raises(InputError) as e:
    enc.embed(items, **kw)
  for p in patterns:
    assert p in str(e.value), str(e.value)


def test_audio_values_and_layouts(enc):
  w = np.sin(np.arange(16000) / 7).astype(np.float32)
  _err(enc, ["a", gm.Audio(w * 1e18, 16000)], "Item 1", "amplitude", "1e+18")
  _err(enc, [gm.Audio(w.astype(np.complex64), 16000)], "Item 0", "complex")
  _err(enc, [gm.Audio(np.zeros((10, 20), np.float32), 16000)], "Item 0", "channels from samples")
  stereo = np.stack([w, 0.5 * w])
  e = enc.embed([gm.Audio(stereo, 16000), gm.Audio(stereo.T, 16000),
                 gm.Audio(stereo.mean(0), 16000)])
  np.testing.assert_allclose(e[0], e[2], atol=1e-6)  # channels-first = channels-last = mono mix
  np.testing.assert_allclose(e[1], e[2], atol=1e-6)


def test_bad_items_are_named(enc):
  _err(enc, None, "list of items", "NoneType")
  _err(enc, ["ok", None], "Item 1", "NoneType")
  frames = np.zeros((2, 8, 8, 3), np.uint8)
  _err(enc, ["ok", gm.Video(frames, fps="4")], "Item 1", "fps must be a number", "'4'")
  _err(enc, ["ok", "bad \ud83d text"], "Item 1", "lone surrogate")


def test_pixel_limit_and_pillow_bombs(tmp_path):
  PILImage.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "a.png")
  with pytest.raises(InputError, match=r"a.png: 100×100 = 0.0 Mpx is above the limit"):
    gm.load_image(tmp_path / "a.png", max_pixels=5000)
  assert gm.load_image(tmp_path / "a.png", max_pixels=None).pixels.shape == (100, 100, 3)
  # A PNG header declaring 20000×10000 (200 Mpx, past Pillow's own bomb limit): refused unread.
  def chunk(kind, data):
    return (len(data).to_bytes(4, "big") + kind + data
            + zlib.crc32(kind + data).to_bytes(4, "big"))
  ihdr = (20000).to_bytes(4, "big") + (10000).to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
  (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                      + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
  with pytest.raises(InputError, match="bomb.png"):
    gm.load_image(tmp_path / "bomb.png")
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # a 100 Mpx header only warns in Pillow; here it is refused
    ihdr = (10000).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                                       + chunk(b"IEND", b""))
    with pytest.raises(InputError, match="big.png: 10000×10000 = 100.0 Mpx"):
      gm.load_image(tmp_path / "big.png")


def test_sequence_frames_of_different_sizes(tmp_path):
  d = tmp_path / "seq"
  d.mkdir()
  PILImage.fromarray(np.zeros((16, 16, 3), np.uint8)).save(d / "000.png")
  PILImage.fromarray(np.zeros((16, 20, 3), np.uint8)).save(d / "001.png")
  with pytest.raises(InputError, match=r"001.png is 20×16 but .*000.png is 16×16"):
    gm.load_video(d)


def test_training_batches_say_truncation_once_per_run():
  from gemb.train.runner import _prepare_fn
  prep = _prepare_fn(gm.load("tiny(truncate=True, max_len=32)"), seq_len=32)
  long = ["y" * 100, "z" * 80]
  with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    for _ in range(3):
      assert prep(long, None)["token_ids"].shape == (2, 32)
  cut = [x for x in w if issubclass(x.category, gm.TruncationWarning)]
  assert len(cut) == 1, [str(x.message) for x in w]
  assert "kept 32 of 102 tokens" in str(cut[0].message)
