"""gemb's `minilm-l6` text embeddings equal sentence-transformers' all-MiniLM-L6-v2.

The reference (tests/fixtures/minilm_reference.npz) was computed once with sentence-transformers
by tools/make_minilm_reference.py; this test needs no torch.
"""

import os

import numpy as np
import pytest

import gemb.model as gm

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "minilm_reference.npz")


@pytest.fixture(scope="module")
def ref():
  return np.load(FIXTURE)


def test_fixture_is_varied(ref):
  s = list(ref["sentences"])
  assert len(s) >= 200
  assert (ref["token_lengths"] > 256).sum() >= 3  # truncation exercised
  assert sum(any(ord(c) > 0x2E80 for c in t) for t in s) >= 10  # CJK and other scripts
  assert sum(any(0x400 <= ord(c) < 0x500 for c in t) for t in s) >= 3  # Cyrillic


# bfloat16 matmul operands (float32 accumulation) stay within the same bound: min cosine 0.99994.
@pytest.mark.parametrize("spec", ["minilm-l6", "minilm-l6(matmul_dtype='bfloat16')"])
def test_minilm_equals_sentence_transformers(ref, spec):
  enc = gm.load(spec)
  emb = enc.embed(list(ref["sentences"]), batch_size=64)
  want = ref["embeddings"] / np.linalg.norm(ref["embeddings"], axis=1, keepdims=True)
  cos = np.sum(emb * want, axis=1)
  assert cos.min() >= 0.9999, (cos.min(), ref["sentences"][cos.argmin()])
  # Modality tokenizers are new, but the text path is untouched by them.
  assert emb.shape == (len(want), 384)


def test_architecture_mismatch_is_an_error():
  import gemb
  with pytest.raises(gemb.ConfigError, match="has 6 layers, the preset has 2"):
    gm.load("minilm-l6(depth=2)")
  with pytest.raises(gemb.ConfigError, match="word_embeddings.*shape"):
    gm.load("minilm-l6(vocab_size=40000)")
