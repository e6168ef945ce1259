"""The conventions embedding users know, on the tiny model: one item -> one vector, images as
arrays / PIL / paths, files by suffix, any dim up to the output size, similarity, the
sentence-transformers `encode` protocol, the progress bar, and `gemb.retrievers.build(spec)`."""

import io
import pathlib
import warnings

import numpy as np
import pytest
import soundfile
from PIL import Image as PILImage

import gemb
import gemb.model as gm
from gemb.model import backbone

RNG = np.random.default_rng(0)
PIXELS = RNG.integers(0, 256, (40, 30, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def enc():
  return gm.load("tiny")


def test_one_text_gives_one_vector_and_a_list_a_matrix(enc):
  one = enc.embed("a red car")
  many = enc.embed(["a red car", "a blue boat"])
  assert one.shape == (64,) and many.shape == (2, 64)
  np.testing.assert_allclose(one, many[0], atol=1e-5)
  assert enc.embed(gm.Image(PIXELS)).shape == (64,)
  assert enc.embed([]).shape == (0, 64)


def test_images_as_array_pil_and_path_equal_gemb_image(enc, tmp_path):
  PILImage.fromarray(PIXELS).save(tmp_path / "im.png")
  want = enc.embed([gm.Image(PIXELS)])[0]
  got = enc.embed([PIXELS, PILImage.fromarray(PIXELS), tmp_path / "im.png",
                   PILImage.fromarray(PIXELS).convert("RGBA")])
  for row in got:
    np.testing.assert_allclose(row, want, atol=1e-5)
  grey = PIXELS[..., 0]
  np.testing.assert_allclose(enc.embed(grey), enc.embed(gm.Image(np.stack([grey] * 3, -1))),
                             atol=1e-5)
  # inside an interleaved item too
  np.testing.assert_allclose(enc.embed([[tmp_path / "im.png", "a caption"]])[0],
                             enc.embed([gm.Interleaved([gm.Image(PIXELS), "a caption"])])[0],
                             atol=1e-5)


def test_audio_and_video_paths_by_suffix(enc, tmp_path):
  wave = (0.1 * RNG.normal(size=16000)).astype(np.float32)
  soundfile.write(tmp_path / "a.wav", wave, 16000)
  np.testing.assert_allclose(enc.embed(tmp_path / "a.wav"),
                             enc.embed(gm.Audio(soundfile.read(tmp_path / "a.wav",
                                                               dtype="float32")[0], 16000)),
                             atol=1e-5)
  frames = RNG.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
  ims = [PILImage.fromarray(f) for f in frames]
  ims[0].save(tmp_path / "v.gif", save_all=True, append_images=ims[1:], duration=200)
  np.testing.assert_allclose(enc.embed(tmp_path / "v.gif"),
                             enc.embed(gm.load_video(tmp_path / "v.gif")), atol=1e-5)
  with pytest.raises(gemb.InputError, match="unknown file type '.xyz'"):
    (tmp_path / "f.xyz").write_text("?")
    enc.embed(tmp_path / "f.xyz")
  with pytest.raises(gemb.InputError, match="does not exist"):
    enc.embed(tmp_path / "missing.png")


def test_pdf_path_goes_to_gemb_load_pdf(enc, tmp_path, monkeypatch):
  """A .pdf path is handed to gemb.load_pdf, looked up at call time (it may come later)."""
  pdf = tmp_path / "doc.pdf"
  pdf.write_bytes(b"%PDF-1.4 test")
  seen = []

  def fake_load_pdf(path):
    seen.append(pathlib.Path(path))
    return gm.Interleaved([gm.Image(PIXELS), "page text"])
  monkeypatch.setattr(gemb, "load_pdf", fake_load_pdf, raising=False)
  np.testing.assert_allclose(enc.embed(pdf), enc.embed([[gm.Image(PIXELS), "page text"]])[0],
                             atol=1e-5)
  assert seen == [pdf]


def test_any_dim_up_to_out_dim_is_the_renormalised_prefix(enc, monkeypatch):
  monkeypatch.setattr(backbone, "_WARNED_DIMS", set())
  full = enc.embed(["one", "two"])
  with pytest.warns(UserWarning, match="dim=20 is not one of this model's trained"):
    got = enc.embed(["one", "two"], dim=20)
  want = full[:, :20] / np.linalg.norm(full[:, :20], axis=1, keepdims=True)
  np.testing.assert_allclose(got, want, atol=1e-5)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # once per size: no second warning, none for trained sizes
    enc.embed(["one"], dim=20)
    enc.embed(["one"], dim=32)
  for bad in (0, 65, 2.5, True):
    with pytest.raises(gemb.InputError, match="from 1 to this model's output size 64"):
      enc.embed(["one"], dim=bad)


def test_similarity_is_cosine(enc):
  a, b = RNG.normal(size=(3, 8)), RNG.normal(size=(5, 8))
  want = np.array([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
  np.testing.assert_allclose(enc.similarity(a, b), want, atol=1e-5)
  assert enc.similarity(a[0], b).shape == (1, 5)
  e = enc.embed(["a cat", "a dog", "a cat"])
  np.testing.assert_allclose(enc.similarity(e, e), e @ e.T, atol=1e-5)
  with pytest.raises(gemb.InputError, match="different sizes"):
    enc.similarity(a, RNG.normal(size=(2, 4)))


def test_sentence_transformers_encode_protocol(enc):
  texts = ["what is a cat", "a cat is an animal"]
  np.testing.assert_allclose(enc.encode(texts, batch_size=8), enc.embed(texts), atol=1e-6)
  np.testing.assert_allclose(enc.encode(texts, prompt_name="query"),
                             enc.embed(texts, task="search result"), atol=1e-6)
  np.testing.assert_allclose(enc.encode(texts, prompt_name="document",
                                        normalize_embeddings=True), enc.embed(texts), atol=1e-6)
  np.testing.assert_allclose(enc.encode(texts, prompt_name="classification"),
                             enc.embed(texts, task="classification"), atol=1e-6)
  assert enc.encode("one sentence").shape == (64,)
  assert enc.encode(texts, truncate_dim=32).shape == (2, 32)
  with pytest.raises(gemb.InputError, match="task names"):
    enc.encode(texts, prompt="query: ")
  with pytest.raises(gemb.InputError, match="unknown argument"):
    enc.encode(texts, no_such_option=1)


def test_progress_bar_above_the_threshold_and_off_on_request(enc, monkeypatch, capsys):
  from gemb.model import encoder as encoder_lib
  monkeypatch.setattr(encoder_lib, "PROGRESS_ABOVE", 5)
  monkeypatch.delenv("GEMB_PROGRESS", raising=False)
  texts = [f"text {i}" for i in range(12)]
  enc.embed(texts, batch_size=4)
  assert "12/12" in capsys.readouterr().err
  enc.embed(texts, batch_size=4, progress=False)
  enc.embed(texts[:5], batch_size=4)  # not above the threshold
  assert "embed" not in capsys.readouterr().err


def test_retrievers_build_is_the_one_call_spec_build():
  index = gemb.retrievers.build("scann(target_recall=0.9, brute_force_below=0)")
  assert index.target_recall == 0.9 and index.brute_force_below == 0
  x = RNG.normal(size=(300, 16)).astype(np.float32)
  ids, _ = gemb.retrievers.build("exact").build(x).search(x[:3], 1)
  assert ids[:, 0].tolist() == [0, 1, 2]
