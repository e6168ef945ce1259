"""EfficientNet-Lite0 with its ImageNet weights, read without torch: real photos get their class.

The photos are scikit-image's bundled samples (`skimage.data`); the class names come from
tensorflow-datasets' ImageNet list, so neither the labels nor the pictures come from gemb.
"""

import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gemb.errors import ConfigError
from gemb.model import efficientnet as E
from gemb.model.torch_checkpoint import load_state_dict

skdata = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def net():
  return E.load_efficientnet_lite("lite0")


def _photo(x: np.ndarray, size: int = 224) -> np.ndarray:
  return np.asarray(Image.fromarray(x).convert("RGB").resize((size, size), Image.BILINEAR),
                    np.float32) / 255.0


# Any of these ImageNet classes counts as right (the cat is a tabby-like house cat; the rocket
# photo shows a launch vehicle on the pad, which ImageNet calls missile / projectile / shuttle).
EXPECTED = {
    "chelsea": {"tabby", "tiger cat", "Egyptian cat"},
    "coffee": {"espresso", "cup", "coffee mug"},
    "rocket": {"missile", "projectile", "space shuttle"},
}


def test_imagenet_top5_on_real_photos(net):
  names = [n.split(",")[0] for n in E.imagenet_classes()]
  x = np.stack([_photo(getattr(skdata, k)()) for k in EXPECTED])
  logits = np.asarray(net(E.normalize(jnp.asarray(x))))
  assert logits.shape == (len(EXPECTED), 1000)
  for (photo, right), row in zip(EXPECTED.items(), logits):
    top5 = {names[i] for i in np.argsort(-row)[:5]}
    assert top5 & right, f"{photo}: top-5 {sorted(top5)} lacks {sorted(right)}"


def test_imagenet_class_names():
  names = E.imagenet_classes()
  assert len(names) == 1000 and len(set(names)) == 1000
  assert names[0].startswith("tench") and names[1].startswith("goldfish")
  assert names[999].startswith("toilet tissue")


def test_feature_map_is_7x7_at_224(net):
  # Traced, not run: the shapes come from the same code, without 45 s of op-by-op convolutions.
  shape = lambda *bhwc: jax.eval_shape(net.features, jax.ShapeDtypeStruct(bhwc, jnp.float32)).shape
  assert shape(2, 224, 224, 3) == (2, 7, 7, 1280)
  assert shape(1, 96, 96, 3) == (1, 3, 3, 1280)  # ceil(96 / 32)


def test_block_layout_matches_checkpoint():
  sd = load_state_dict(E.weights_path("lite0"))
  assert len(sd) == 296  # 16 MBConv blocks, stem, head, fc, BN statistics
  specs = E.block_specs(E.VARIANTS["lite0"])
  assert len(specs) == 16
  for i, (k, s, e, c_in, c_out) in enumerate(specs):
    assert sd[f"_blocks.{i}._depthwise_conv.weight"].shape == (c_in * e, 1, k, k)
    assert sd[f"_blocks.{i}._project_conv.weight"].shape == (c_out, c_in * e, 1, 1)
  # Lite1/Lite2 (presets of the same code): deeper, Lite2 wider; stem and head fixed.
  assert len(E.block_specs(E.VARIANTS["lite1"])) == 1 + 3 + 3 + 4 + 4 + 5 + 1
  assert E.block_specs(E.VARIANTS["lite2"])[-1][-1] == 352  # round_filters(320 · 1.1)
  assert E.block_specs(E.VARIANTS["lite2"])[0][3] == 32


def test_wrong_variant_is_refused():
  net = E.EfficientNetLite("lite1", rngs=__import__("flax").nnx.Rngs(0))
  with pytest.raises(ConfigError, match="wrong variant"):
    E.load_state_dict_into(net, load_state_dict(E.weights_path("lite0")))


# -- the checkpoint reader ----------------------------------------------------------------------

class _Evil:
  def __reduce__(self):
    return (print, ("pwned",))


def test_reader_refuses_other_globals(tmp_path):
  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as z:
    z.writestr("archive/data.pkl", pickle.dumps({"w": _Evil()}, protocol=2))
  with pytest.raises(ConfigError, match="print"):
    load_state_dict(path)


def test_reader_rejects_non_checkpoints(tmp_path):
  path = tmp_path / "junk.pth"
  path.write_bytes(b"not a checkpoint at all")
  with pytest.raises(ConfigError, match="torch"):
    load_state_dict(path)
  with pytest.raises(ConfigError, match="does not exist"):
    load_state_dict(tmp_path / "missing.pth")
