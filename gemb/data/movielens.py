"""MovieLens-100k, read at run time from the installed `recbole` package's example folder.

gemb does not ship the files: MovieLens is distributed by GroupLens under its own terms, and
recbole (MIT) carries a copy in ``recbole/dataset_example/ml-100k/``. Install it without its heavy
dependencies::

    pip install --no-deps recbole==1.2.1
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import numpy as np

from gemb.data.card import DatasetCard
from gemb.errors import ConfigError, InputError

INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western", "unknown")

CARD = DatasetCard(
    name="movielens-100k",
    description="100,000 ratings (1-5) of 1,682 movies by 943 users, with titles, years, genres",
    source=f"GroupLens MovieLens-100k via the recbole package's dataset_example ({INSTALL_HINT})",
    license="MovieLens terms of use (research, no redistribution); read in place, not copied",
    sizes={"ratings": 100_000, "items": 1682, "users": 943},
)


@dataclasses.dataclass(frozen=True)
class MovieLens:
  """Ratings and item metadata; users and items are re-indexed densely from 0."""

  user_n: np.ndarray  # [n_ratings] int32 user index
  item_n: np.ndarray  # [n_ratings] int32 item index
  rating_n: np.ndarray  # [n_ratings] float32 in 1..5
  time_n: np.ndarray  # [n_ratings] int64 unix seconds
  item_ids: np.ndarray  # [n_items] original MovieLens item ids
  titles: list[str]
  years: np.ndarray  # [n_items] int32, 0 where unknown
  genres_ig: np.ndarray  # [n_items, len(GENRES)] float32 multi-hot
  n_users: int

  card = CARD

  @property
  def n_items(self) -> int:
    return len(self.item_ids)

  def __len__(self) -> int:
    return len(self.rating_n)

  def __getitem__(self, i: int) -> dict:
    """One rating, so the ratings table is a random-access source like every gemb dataset."""
    return {"user": int(self.user_n[i]), "item": int(self.item_n[i]),
            "rating": float(self.rating_n[i]), "time": int(self.time_n[i]),
            "title": self.titles[self.item_n[i]]}

  def item_text(self, i: int) -> str:
    """Title + year + genres, the text a content embedding sees."""
    genres = ", ".join(g for g, on in zip(GENRES, self.genres_ig[i]) if on)
    year = f" ({self.years[i]})" if self.years[i] else ""
    return f"{self.titles[i]}{year}. Genres: {genres or 'unknown'}."

  def first_rated(self) -> np.ndarray:
    """[n_items] time of each item's first rating: the newest items play the fresh ones."""
    first = np.full(self.n_items, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, self.item_n, self.time_n)
    return first


def data_dir() -> pathlib.Path:
  """The ml-100k folder inside the installed recbole package; a clear error if it is missing."""
  spec = importlib.util.find_spec("recbole")
  if spec is None or not spec.submodule_search_locations:
    raise InputError(f"MovieLens-100k is read from the `recbole` package, which is not installed. "
                     f"Install it with: {INSTALL_HINT}")
  root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
  missing = [n for n in ("ml-100k.inter", "ml-100k.item") if not (root / n).is_file()]
  if missing:
    raise InputError(f"recbole is installed but {root} lacks {', '.join(missing)}; reinstall with: "
                     f"{INSTALL_HINT}")
  return root


def _read_tsv(path: pathlib.Path) -> tuple[list[str], list[list[str]]]:
  with open(path, encoding="utf-8", errors="replace") as f:
    header = [h.split(":")[0] for h in f.readline().rstrip("\n").split("\t")]
    rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
  return header, rows


def load_movielens_100k(root: str | pathlib.Path | None = None) -> MovieLens:
  """Reads ratings and items; `root` overrides the recbole folder (tests use a small copy)."""
  root = pathlib.Path(root) if root is not None else data_dir()
  _, inter = _read_tsv(root / "ml-100k.inter")
  header, items = _read_tsv(root / "ml-100k.item")
  col = {h: k for k, h in enumerate(header)}
  for need in ("item_id", "movie_title", "release_year", "class"):
    if need not in col:
      raise InputError(f"{root / 'ml-100k.item'} has no {need!r} column (header: {header}).")
  item_ids = np.array([int(r[col["item_id"]]) for r in items], np.int64)
  index = {int(i): k for k, i in enumerate(item_ids)}
  titles = [r[col["movie_title"]] if len(r) > col["movie_title"] else "" for r in items]
  years = np.array([int(r[col["release_year"]]) if len(r) > col["release_year"]
                    and r[col["release_year"]].isdigit() else 0 for r in items], np.int32)
  genres_ig = np.zeros((len(items), len(GENRES)), np.float32)
  gidx = {g: k for k, g in enumerate(GENRES)}
  for k, r in enumerate(items):
    for g in (r[col["class"]].split(" ") if len(r) > col["class"] else []):
      if g in gidx:
        genres_ig[k, gidx[g]] = 1.0
  users = sorted({int(r[0]) for r in inter})
  uidx = {u: k for k, u in enumerate(users)}
  try:
    user_n = np.array([uidx[int(r[0])] for r in inter], np.int32)
    item_n = np.array([index[int(r[1])] for r in inter], np.int32)
  except KeyError as e:
    raise InputError(f"{root / 'ml-100k.inter'} rates item {e} that the item file lacks.") from None
  rating_n = np.array([float(r[2]) for r in inter], np.float32)
  time_n = np.array([int(float(r[3])) for r in inter], np.int64)
  return MovieLens(user_n, item_n, rating_n, time_n, item_ids, titles, years, genres_ig,
                   len(users))


SPLIT_FRACTIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


def movielens_100k(split: str = "all", root: str | None = None) -> MovieLens:
  """MovieLens-100k ratings with item titles, years, genres; splits are by rating time.

  Not a `gemb.datasets` entry: ratings are not query/positive pairs (no records, no
  retrieval_task), so the cold-start code imports this function directly.
  """
  ml = load_movielens_100k(root)
  if split == "all":
    return ml
  if split not in SPLIT_FRACTIONS:
    raise ConfigError(f"movielens-100k: unknown split {split!r}; use 'all', "
                      f"{', '.join(repr(s) for s in SPLIT_FRACTIONS)}.")
  lo, hi = SPLIT_FRACTIONS[split]
  order = np.argsort(ml.time_n, kind="stable")
  keep = np.sort(order[int(lo * len(order)):int(hi * len(order))])
  return dataclasses.replace(ml, user_n=ml.user_n[keep], item_n=ml.item_n[keep],
                             rating_n=ml.rating_n[keep], time_n=ml.time_n[keep])
