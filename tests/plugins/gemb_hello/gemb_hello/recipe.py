"""A recipe shipped by the gemb-hello test plugin (entry point gemb.recipes: hello); it runs the
`hello_fit` run kind of the same plugin."""

import ml_collections

from gemb.config import check_variant


def get_config(variant: str = ""):
  check_variant(variant, ("", "tiny"))
  cfg = ml_collections.ConfigDict()
  cfg.kind = "hello_fit"
  cfg.slope = 2.0
  cfg.intercept = -0.5
  cfg.lr = 0.5
  cfg.steps = 200 if variant == "" else 60
  cfg.flags = ml_collections.ConfigDict({"verbose": False, "dims": (8, 16)})
  return cfg
