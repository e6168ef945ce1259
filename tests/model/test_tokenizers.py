"""Each modality tokenizer: shapes, positions, determinism; registry entries."""

import numpy as np
import pytest

import gemb
from gemb.model import tokenizers as T


def test_registered():
  names = set(gemb.tokenizers.names())
  assert {"wordpiece", "bytes", "image_patches", "audio_logmel", "video_frames"} <= names
  assert isinstance(gemb.tokenizers.build("image_patches(image_size=32, patch=8)"), T.ImagePatches)


def test_wordpiece_matches_minilm_vocab():
  tok = gemb.tokenizers.build("wordpiece")
  assert (tok.vocab_size, tok.pad_id, tok.cls_id, tok.sep_id) == (30522, 0, 101, 102)
  ids = tok.encode_batch(["Hello, World!", "hello world"])
  assert ids[0].tolist() == [7592, 1010, 2088, 999]  # lower-cased wordpieces, no specials
  assert ids[1].tolist() == [7592, 2088]
  long = tok.encode_batch(["word " * 600])[0]
  assert len(long) == 600  # the file's own truncation/padding is off; the packer decides


def test_bytes_any_language():
  tok = T.ByteTokenizer()
  ids = tok.encode_batch(["aé日"])[0]
  assert ids.tolist() == [97 + 3, 0xC3 + 3, 0xA9 + 3, 0xE6 + 3, 0x97 + 3, 0xA5 + 3]
  assert ids.max() < tok.vocab_size and ids.min() > tok.sep_id


def test_image_patches_shapes_positions():
  tok = T.ImagePatches(image_size=32, patch=8)
  x = np.random.default_rng(0).random((50, 40, 3), dtype=np.float32)
  out = tok(x)
  assert out.modality == T.IMAGE and len(out) == 16
  assert out.patches_np.shape == (16, 8 * 8 * 3) and out.patches_np.dtype == np.float32
  assert out.pos_n3[:, 0].tolist() == [0] * 16
  assert out.pos_n3[:5, 1:].tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0]]
  np.testing.assert_array_equal(tok(x).patches_np, out.patches_np)  # deterministic
  # An image already at size is not resized: patch 0 is the top-left 8×8 block, scaled to [-1, 1].
  y = np.random.default_rng(1).random((32, 32, 3), dtype=np.float32)
  np.testing.assert_allclose(tok(y).patches_np[1], (y[:8, 8:16] * 2 - 1).ravel(), atol=1e-6)
  with pytest.raises(gemb.ConfigError, match="multiple of patch"):
    T.ImagePatches(image_size=30, patch=8)


def test_video_frames_temporal_positions():
  tok = T.VideoFrames(frame_size=16, patch=8, max_frames=4)
  x = np.random.default_rng(0).random((10, 20, 20, 3), dtype=np.float32)
  out = tok(x)
  assert out.modality == T.VIDEO and out.patches_np.shape == (4 * 4, 192)
  # 4 of 10 frames at 1 fps (frames 0, 3, 6, 9): time positions in seconds / time_step (0.25 s)
  assert out.pos_n3[:, 0].tolist() == [0] * 4 + [12] * 4 + [24] * 4 + [36] * 4
  assert tok(x, fps=4.0).pos_n3[::4, 0].tolist() == [0, 3, 6, 9]
  assert len(tok(x[:2])) == 8  # fewer frames than max: all kept
  np.testing.assert_array_equal(tok(x).patches_np, out.patches_np)


def test_log_mel_matches_numpy():
  sr = 16000
  t = np.arange(sr) / sr
  wave = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
  mel = T.log_mel_spectrogram(wave, sr, n_mels=32)
  assert mel.shape == (98, 32)
  # numpy reference of the same definition
  win, hop, n_fft = 400, 160, 512
  frames = np.stack([wave[i * hop:i * hop + win] for i in range(98)])
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
  power = np.abs(np.fft.rfft(frames * window, n=n_fft)) ** 2
  ref = np.log(power @ T.mel_filterbank(sr, n_fft, 32) + 1e-6)
  np.testing.assert_allclose(mel, ref, rtol=1e-3, atol=1e-3)
  # The 1 kHz tone peaks in a mel bin centred near 1 kHz (centres here are ~125 Hz apart).
  centre_hz = np.argmax(T.mel_filterbank(sr, n_fft, 32), axis=0) * sr / n_fft
  assert abs(centre_hz[np.argmax(mel.mean(0))] - 1000) < 100


def test_audio_patches_and_resampling():
  tok = T.AudioLogMel(n_mels=32, patch_time=16, patch_freq=16, max_seconds=2.0)
  wave = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
  out = tok(wave, 16000)
  assert out.modality == T.AUDIO
  assert out.patches_np.shape == (7 * 2, 256)  # 98 frames → 7 time patches × 2 freq patches
  assert out.pos_n3[:4].tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 0], [1, 1, 0]]
  assert len(tok(np.zeros(16000 * 5, np.float32), 16000)) == len(tok(np.zeros(32000, np.float32)))
  # 48 kHz input is resampled to the same duration.
  w48 = np.interp(np.arange(48000) / 3, np.arange(16000), wave).astype(np.float32)
  assert len(tok(w48, 48000)) == len(out)
  np.testing.assert_array_equal(tok(wave, 16000).patches_np, out.patches_np)
