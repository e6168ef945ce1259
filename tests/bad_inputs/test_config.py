"""Bad settings, refused when the config is loaded (before any work) with a ConfigError that
names the key: model/preset arguments, optimizer values, stages, soup, specs and literals."""

import math

import pytest

import gemb
from gemb import config as config_lib
from gemb.errors import ConfigError, SpecError

PRESETS = {  # preset spec -> text of the error
    "tiny(width=-1)": "width=-1 must be > 0",
    "tiny(width=0)": "width=0 must be > 0",
    "tiny(heads=3)": "heads=3 must divide width=64",
    "tiny(depth=-1)": "depth=-1 must be >= 1",
    "tiny(depth=0)": "depth=0 must be >= 1",
    "tiny(layer_norm_eps=-1.0)": "layer_norm_eps=-1.0 must be > 0",
    "tiny(layer_norm_eps=float('nan'))": "must be a Python literal",
    "tiny(truncate='no')": "truncate='no': expected true or false",
    "tiny(truncate=1)": "truncate=1: expected true or false",
    "tiny(mrl_dims=(7, 1000))": "mrl_dims=(7, 1000) must lie in (0, out_dim=64]",
    "tiny(mrl_dims=(0, 16))": "must lie in (0, out_dim=64]",
    "tiny(mrl_dims=(32, 16))": "increasing",
    "tiny(out_dim=1000)": "out_dim=1000 must be <= width=64",
    "tiny(max_len=1000)": "max_positions=128 must be >= max_len=1000",
    "tiny(width=64.5)": "width=64.5: expected an integer",
    "tiny(colour=1)": "unknown key(s) 'colour'",
    "tiny(matmul_dtype='float16')": "matmul_dtype='float16'",
}


@pytest.mark.parametrize("spec", list(PRESETS))
def test_bad_model_arguments(spec):
  with pytest.raises((ConfigError, SpecError)) as e:
    gemb.presets.build(spec)
  assert PRESETS[spec] in str(e.value), str(e.value)


def _train_cfg(**sets):
  cfg = config_lib.load_config(config_lib.find_recipe("train:tiny"))
  return config_lib.apply_overrides(cfg, [f"{k}={v}" for k, v in sets.items()])


TRAIN = {  # --set overrides -> text of the error
    "stages.finetune.loss=nosuch": "stages.finetune.loss: Unknown gemb.losses component 'nosuch'",
    "stages.finetune.loss=infonce(temprature=0.1)": "stages.finetune.loss",
    "stages.prefinetune.optim.lr=nan": "stages.prefinetune.optim.lr=nan: expected a finite",
    "stages.prefinetune.optim.lr=inf": "expected a finite number",
    "stages.prefinetune.optim.lr=0": "lr=0.0 must be > 0",
    "stages.prefinetune.optim.lr=-1e-3": "lr=-0.001 must be > 0",
    "stages.prefinetune.optim.b2=1.5": "b2=1.5 must be in [0, 1)",
    "stages.prefinetune.optim.schedule=linear": "schedule='linear'",
    "stages.prefinetune.optim.warmup_frac=1.5": "warmup_frac=1.5",
    "stages.prefinetune.steps=-5": "stages.prefinetune: steps=-5 must be >= 0",
    "stages.prefinetune.batch_size=0": "batch_size=0 must be >= 1",
    "stages.finetune.prompt_dropout=2.0": "prompt_dropout=2.0",
    "stages.finetune.hard_negatives=-1": "hard_negatives=-1",
    "stages.finetune.tasks=(('nosuchdata', 1.0),)": "stages.finetune.tasks: Unknown gemb.datasets",
    "stages.finetune.tasks=(('code', -1.0),)": "every rate must be > 0",
    "stages.finetune.tasks=()": "tasks is empty",
    "soup.method=best": "soup: method='best'",
    "soup.metric=ndcg": "metric='ndcg'",
    "checkpoint.keep=0": "keep=0",
    "eval.dataset=nosuchdata": "eval.dataset: Unknown gemb.datasets",
    "stage_order=('prefinetune', 'nosuchstage')": "stage_order names 'nosuchstage'",
}


@pytest.mark.parametrize("override", list(TRAIN))
def test_bad_train_settings_fail_at_load(override):
  from gemb.train.runner import check_train_config
  key, _, value = override.partition("=")
  cfg = _train_cfg(**{key: value})
  with pytest.raises(ConfigError) as e:
    check_train_config(cfg)
  assert TRAIN[override] in str(e.value), str(e.value)


def test_the_recipes_own_configs_pass():
  from gemb.train.runner import check_train_config
  check_train_config(_train_cfg())
  check_train_config(config_lib.load_config(config_lib.find_recipe("train")))


LITERALS = {  # text -> error, for a spec and for a --set value
    "-" * 100_000 + "1": "characters",
    "-" * 5_000 + "1": "nested more than",
    "(" * 200 + ")" * 200: "nested more than",
    "[" * 2_000 + "]" * 2_000: "nested more than",
}


@pytest.mark.parametrize("text", list(LITERALS), ids=["100k-minus", "5k-minus", "parens",
                                                       "brackets"])
def test_literals_are_bounded(text):
  with pytest.raises(SpecError, match=LITERALS[text]):
    gemb.parse_spec(f"tiny(width={text})")
  cfg = _train_cfg()
  with pytest.raises(ConfigError, match=LITERALS[text]):
    config_lib.apply_overrides(cfg, [f"stages.finetune.tasks={text}"])


def test_dataclass_from_is_the_one_checker():
  import dataclasses

  @dataclasses.dataclass
  class Section:
    lr: float = 1.0
    steps: int = 1
    dims: tuple[int, ...] = ()

  assert config_lib.dataclass_from(Section, {"lr": 2, "dims": [1, 2]}, where="s") == \
      Section(2.0, 1, (1, 2))
  for bad, text in [({"lr": math.nan}, "s.lr=nan"), ({"steps": 1.5}, "s.steps=1.5"),
                    ({"steps": True}, "s.steps=True"), ({"dims": "12"}, "s.dims='12'"),
                    ({"stpes": 1}, "Did you mean 'steps'"), ([1], "expected a group")]:
    with pytest.raises(ConfigError, match=__import__("re").escape(text)):
      config_lib.dataclass_from(Section, bad, where="s")
