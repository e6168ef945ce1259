"""gemb's EfficientNet-Lite0, 1 and 2 against a torch reference of the same network, and the
torch-free checkpoint reader against `torch.save` / `torch.load`. Runs where torch is installed
(CI's mteb step: `bash setup.sh mteb`, which imports the reference first); skipped elsewhere.

The reference architecture is the `efficientnet-lite-pytorch` package (0.1.0, installed --no-deps
beside torch; the port after lukemelas' EfficientNet-PyTorch whose key layout the weights use), in
eval mode, with the state dict loaded by torch itself: no gemb code builds or loads it.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ref_lib = pytest.importorskip("efficientnet_lite_pytorch")

import jax.numpy as jnp  # noqa: E402

from gemb.model import efficientnet as E  # noqa: E402
from gemb.model.torch_checkpoint import load_state_dict  # noqa: E402


@pytest.mark.parametrize("variant", sorted(E.VARIANTS))
def test_logits_equal_torch_reference(variant):
  # Lite1 and Lite2 are deeper (and Lite2 wider) presets of the same code, at their own sizes.
  ref = ref_lib.EfficientNet.from_name(f"efficientnet-{variant}")
  ref.load_state_dict(torch.load(E.weights_path(variant), map_location="cpu", weights_only=True))
  ref.eval()
  size = E.VARIANTS[variant].image_size
  x_bhwc = np.random.default_rng(0).random((2, size, size, 3), dtype=np.float32)
  x_norm = (x_bhwc - E.IMAGENET_MEAN) / E.IMAGENET_STD
  x_bchw = torch.from_numpy(x_norm.transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    want = ref(x_bchw).numpy()
    feat_want = ref.extract_features(x_bchw).numpy().transpose(0, 2, 3, 1)
  net = E.load_efficientnet_lite(variant)
  got = np.asarray(net(jnp.asarray(x_norm)))
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(net.features(jnp.asarray(x_norm))), feat_want,
                             atol=1e-4, rtol=1e-4)


def test_reader_equals_torch_load_on_the_wheel():
  path = E.weights_path("lite0")
  want = torch.load(path, map_location="cpu", weights_only=True)
  got = load_state_dict(path)
  assert list(got) == list(want)
  for k, v in want.items():
    np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)


def test_reader_equals_torch_load_zip_layout(tmp_path):
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  sd = {"w": base, "w_t": base.t(), "view": base[1:, 2:5], "half": base.half(),
        "long": torch.tensor([3, -1], dtype=torch.int64), "scalar": torch.tensor(2.5),
        "bf16": torch.linspace(-2, 2, 5).bfloat16(), "flag": torch.tensor([True, False])}
  path = tmp_path / "sd.pt"
  torch.save(sd, path)  # the zip layout; storages shared between w, w_t and view
  got = load_state_dict(path)
  for k, v in sd.items():
    np.testing.assert_array_equal(got[k], v.float().numpy() if k == "bf16" else v.numpy(),
                                  err_msg=k)
