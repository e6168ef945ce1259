"""The label-text bridge: a tower token whose class distribution is one-hot on class k embeds as
the MiniLM words of k's name, and so the untrained bridged model already matches photos to
captions, which the unbridged tower (a random projection) does not.

References: MiniLM's word embeddings read from its safetensors file and its vocab.txt tokenized
by the `tokenizers` library's own BERT WordPiece (not gemb's wrapper); the class names written
out here; scikit-image's photos with their true subjects.
"""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file
from skimage import data as skdata
from tokenizers import BertWordPieceTokenizer

import gemb.model as gm
from gemb.model.inputs import Image
from gemb.model.tokenizers import IMAGE, minilm_dir

# ImageNet index → first synonym of its name (the standard ImageNet-1k list).
CLASSES = {0: "tench", 281: "tabby", 967: "espresso", 657: "missile"}


@pytest.fixture(scope="module")
def bridged():
  return gm.load("minilm-l6-effnet(max_len=64)")


def test_one_hot_cell_embeds_as_the_class_name(bridged):
  word_emb = load_file(os.path.join(minilm_dir(), "model.safetensors"))
  word_emb = next(v for k, v in word_emb.items() if k.endswith("word_embeddings.weight"))
  wp = BertWordPieceTokenizer(os.path.join(minilm_dir(), "vocab.txt"), lowercase=True)
  tok = bridged.image_tokenizer
  assert tok.patch_dim == 1000 + 1280
  pe = bridged.model.patch_embeds[str(IMAGE)]
  patches = np.zeros((1, len(CLASSES), tok.patch_dim), np.float32)
  for n, k in enumerate(CLASSES):
    patches[0, n, k] = 1.0
    patches[0, n, 1000:] = np.random.default_rng(n).normal(size=1280)  # features start ignored
  pos = np.array([[[0, 0, 0], [0, 0, 1], [0, 1, 0], [0, 1, 1]]], np.int32)
  got = np.asarray(pe(jnp.asarray(patches), jnp.asarray(pos)))[0]
  for n, name in enumerate(CLASSES.values()):
    ids = wp.encode(name, add_special_tokens=False).ids
    np.testing.assert_allclose(got[n], word_emb[ids].mean(0), rtol=1e-5, atol=1e-6)


def _ranks_right(enc) -> list[bool]:
  """For each caption, is its photo the most similar of the three?"""
  photos = [skdata.chelsea(), skdata.coffee(), skdata.rocket()]
  captions = ["a cat", "a cup of coffee", "a rocket"]
  img = enc.embed([Image(x) for x in photos])
  txt = enc.embed(captions)
  return list(np.argmax(txt @ img.T, 1) == np.arange(3))


def test_untrained_bridged_model_matches_photos_to_captions(bridged):
  assert _ranks_right(bridged) == [True, True, True]


def test_unbridged_tower_does_not():
  """The same tower through a random projection (head=False, seed 0): not all three right, so
  the test above measures the bridge, not the text model alone."""
  enc = gm.load("minilm-l6-effnet(max_len=64, image_tokenizer='effnet_image(head=False)')")
  assert not all(_ranks_right(enc))
