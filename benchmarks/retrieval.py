"""Retrieval benchmark: gemb `scann` against raw ScaNN, faiss-cpu, hnswlib and gemb `exact`.

Setup (all in one process, one after the other, on the same data and the same CPU threads):

* corpus: `--n` unit vectors of dim `--d` (default 1M x 128, float32), drawn from a mixture of
  n/50 Gaussians with a power-law spectrum (coordinate i scaled by (i+1)^-0.5; centres at scale 1,
  within-cluster noise 0.6) and L2-normalized: clustered and anisotropic like real embeddings, not
  uniform on the sphere (where every ANN method degenerates to brute force) and not so clustered
  that a few partitions hold all neighbours. `--queries` fresh draws from the same mixture are
  the queries.
* a corpus of real gemb embeddings: the first paragraphs of Python stdlib docstrings (read with
  `ast`, nothing imported), embedded by gemb's `minilm-l6` preset (384-d); held-out docstrings
  are the queries. Skipped with `--real-n 0`; cached under `--cache` (embedding is slow on CPU).
* ground truth: gemb `exact` (brute force in JAX), top 10 by inner product.
* each method is built once, then its search knobs are swept from cheap to expensive; its
  reported setting is the fastest one with recall@10 >= `--target` (0.95). QPS is the best of
  several timed batch searches of all queries (at least 2), with `--threads` threads where the library takes a
  thread count. Memory is the growth of the process RSS over the build (the index's footprint,
  including any copy of the data it keeps), measured after garbage collection.

Methods: gemb-scann (`gemb.retrievers.get("scann")`, parameters from the corpus size), raw
ScaNN with the same tree / AH / reorder parameters (the yardstick gemb must stay within 5% of),
faiss IVF-Flat, faiss IVF-PQ fast-scan with exact refinement (IVF,PQ{d/2}x4fs,RFlat), faiss HNSW
(M=16, efConstruction=40), hnswlib (M=16, ef_construction=40), gemb-exact.

Usage: python benchmarks/retrieval.py [--n 1000000] [--d 128] [--queries 1000] [--real-n 10000]
The last line printed is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import math
import os
import pathlib
import sys
import sysconfig
import time
from typing import Any, Callable, Iterable

import numpy as np

# OpenMP threads (faiss) that spin while waiting starve everything else on a shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

K = 10
HNSW_EFS = (16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 384, 512)


def rss_mb() -> float:
  with open("/proc/self/statm") as f:
    return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def clustered(n: int, d: int, centers: int, seed: int, noise: float = 0.6,
              center_seed: int = 1234) -> np.ndarray:
  scale_d = ((np.arange(d) + 1.0) ** -0.5).astype(np.float32)
  c_cd = np.random.default_rng(center_seed).normal(size=(centers, d)).astype(np.float32) * scale_d
  rng = np.random.default_rng(seed)
  out = np.empty((n, d), np.float32)
  for lo in range(0, n, 200_000):  # in blocks: bounded temporary memory
    m = min(200_000, n - lo)
    x = c_cd[rng.integers(0, centers, m)] + noise * scale_d * rng.standard_normal((m, d),
                                                                                  np.float32)
    out[lo:lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
  return out


def recall_at_k(found_qk: np.ndarray, truth_qk: np.ndarray) -> float:
  hits = sum(len(np.intersect1d(a, b)) for a, b in zip(found_qk, truth_qk))
  return hits / truth_qk.size


class Method:
  """A built index plus its sweep of search settings (cheap first)."""

  name = ""

  def build(self, x: np.ndarray) -> None: ...

  def settings(self) -> Iterable[tuple[str, Callable[[np.ndarray], np.ndarray], Any]]:
    """Yields (label, search fn -> ids_qk, group); within a group, costs increase."""

  def close(self) -> None: ...


# -- the methods ---------------------------------------------------------------------------------

def scann_sweep(n_leaves: int) -> list[tuple[int, int]]:
  fracs = (0.03, 0.05, 0.07, 0.09, 0.11, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.6)
  leaves = sorted({max(1, int(round(f * n_leaves))) for f in fracs})
  return [(100, l) for l in leaves]


class GembScann(Method):
  name = "gemb-scann"

  def build(self, x):
    import gemb
    self.index = gemb.retrievers.get("scann")().build(x)

  def settings(self):
    ix = self.index
    if not ix.num_leaves:
      yield "brute force (n below the tree threshold)", lambda q: ix.search(q, K)[0], 0
      return
    for reorder, leaves in scann_sweep(ix.num_leaves):
      def run(q, reorder=reorder, leaves=leaves):
        ix.reorder, ix.leaves_to_search = reorder, leaves
        return ix.search(q, K)[0]
      yield f"leaves={leaves}/{ix.num_leaves} reorder={reorder}", run, reorder

  def close(self):
    del self.index


class RawScann(Method):
  """ScaNN's own builder and searcher, with the parameters gemb's auto-tuning picks."""

  name = "raw-scann"

  def build(self, x):
    from scann.scann_ops.py import scann_ops_pybind
    from gemb.retrieval.scann_index import auto_params
    p = auto_params(len(x))
    self.p = p
    b = scann_ops_pybind.builder(x, K, "dot_product")
    if p["num_leaves"]:
      b = b.tree(num_leaves=p["num_leaves"], num_leaves_to_search=p["leaves_to_search"],
                 training_sample_size=p["training_sample_size"])
      b = b.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(p["reorder"])
    else:
      b = b.score_brute_force()
    self.searcher = b.build()

  def settings(self):
    s, p = self.searcher, self.p
    if not p["num_leaves"]:
      yield "brute force", lambda q: s.search_batched_parallel(q, K, batch_size=256)[0], 0
      return
    for reorder, leaves in scann_sweep(p["num_leaves"]):
      yield (f"leaves={leaves}/{p['num_leaves']} reorder={reorder}",
             lambda q, r=reorder, l=leaves: s.search_batched_parallel(
                 q, K, pre_reorder_num_neighbors=r, leaves_to_search=l, batch_size=256)[0],
             reorder)

  def close(self):
    del self.searcher


class FaissIVF(Method):
  def __init__(self, factory: str, name: str, threads: int):
    self.factory, self.name, self.threads = factory, name, threads

  def build(self, x):
    import faiss
    faiss.omp_set_num_threads(self.threads)
    n, d = x.shape
    self.nlist = max(16, int(round(math.sqrt(n))))
    self.index = faiss.index_factory(d, self.factory.format(nlist=self.nlist, m=d // 2),
                                     faiss.METRIC_INNER_PRODUCT)
    sample = x[np.random.default_rng(0).permutation(n)[:min(n, 100 * self.nlist)]]
    self.index.train(sample)
    self.index.add(x)
    self.ivf = faiss.extract_index_ivf(self.index)

  def settings(self):
    refine = hasattr(self.index, "k_factor")
    for k_factor in ((16,) if refine else (1,)):
      for nprobe in (4, 8, 12, 16, 24, 32, 48, 64, 80, 96, 128, 192, 256):
        if nprobe > self.nlist:
          break
        def run(q, nprobe=nprobe, k_factor=k_factor):
          self.ivf.nprobe = nprobe
          if refine:
            self.index.k_factor = k_factor
          return self.index.search(q, K)[1]
        label = f"nlist={self.nlist} nprobe={nprobe}" + (f" k_factor={k_factor}" if refine else "")
        yield label, run, k_factor

  def close(self):
    del self.index, self.ivf


class FaissHNSW(Method):
  name = "faiss-hnsw"

  def __init__(self, threads: int, m: int = 16, ef_construction: int = 40):
    self.threads, self.m, self.efc = threads, m, ef_construction

  def build(self, x):
    import faiss
    faiss.omp_set_num_threads(self.threads)
    self.index = faiss.IndexHNSWFlat(x.shape[1], self.m, faiss.METRIC_INNER_PRODUCT)
    self.index.hnsw.efConstruction = self.efc
    self.index.add(x)

  def settings(self):
    for ef in HNSW_EFS:
      def run(q, ef=ef):
        self.index.hnsw.efSearch = ef
        return self.index.search(q, K)[1]
      yield f"M={self.m} efC={self.efc} efSearch={ef}", run, 0

  def close(self):
    del self.index


class Hnswlib(Method):
  name = "hnswlib"

  def __init__(self, threads: int, m: int = 16, ef_construction: int = 40):
    self.threads, self.m, self.efc = threads, m, ef_construction

  def build(self, x):
    import hnswlib
    self.index = hnswlib.Index(space="ip", dim=x.shape[1])
    self.index.init_index(max_elements=len(x), M=self.m, ef_construction=self.efc, random_seed=0)
    self.index.add_items(x, np.arange(len(x)), num_threads=self.threads)

  def settings(self):
    for ef in HNSW_EFS:
      def run(q, ef=ef):
        self.index.set_ef(ef)
        return self.index.knn_query(q, k=K, num_threads=self.threads)[0].astype(np.int64)
      yield f"M={self.m} efC={self.efc} ef={ef}", run, 0

  def close(self):
    del self.index


class GembExact(Method):
  name = "gemb-exact"

  def build(self, x):
    import gemb
    self.index = gemb.retrievers.get("exact")().build(x)
    self.index.search(x[:8], K)  # puts the corpus on the device, as a first search would

  def settings(self):
    yield "brute force (JAX, chunk=32768)", lambda q: self.index.search(q, K)[0], 0

  def close(self):
    del self.index


# -- the harness ---------------------------------------------------------------------------------

def build(method: Method, x: np.ndarray) -> dict[str, Any]:
  gc.collect()
  before = rss_mb()
  t = time.perf_counter()
  method.build(x)
  build_s = time.perf_counter() - t
  gc.collect()
  return {"build_s": round(build_s, 2), "mem_mb": round(rss_mb() - before, 1)}


def sweep(methods: list[Method], q: np.ndarray, truth: np.ndarray, target: float, log,
          budget_s: float = 0.6) -> list[dict[str, Any]]:
  """Sweeps the methods' settings in lock step (they must yield the same labels).

  With two methods (gemb-scann and raw ScaNN) their timed runs alternate, so that a burst of
  load from other processes on the shared CPU hits both alike; each keeps its best time.
  """
  results = [{"sweep": [], "best": None, "reached": set()} for _ in methods]
  for steps in zip(*(m.settings() for m in methods)):
    group = steps[0][2]
    if all(group in res["reached"] for res in results):  # the rest of this group costs more
      continue
    best = [math.inf] * len(methods)
    out: list[Any] = [None] * len(methods)
    spent, runs = 0.0, 0
    # At least 3 runs, more while cheap; a slow setting (a large corpus) gets one run.
    while runs < 1 or (runs < 3 and spent < 3) or (spent < budget_s * len(methods) and
                                                       runs < 15):
      for i, (_, fn, _) in enumerate(steps):
        t = time.perf_counter()
        out[i] = fn(q)
        dt = time.perf_counter() - t
        best[i], spent = min(best[i], dt), spent + dt
      runs += 1
    for i, (label, _, _) in enumerate(steps):
      r = recall_at_k(np.asarray(out[i]), truth)
      row = {"setting": label, "recall": round(r, 4), "qps": round(len(q) / best[i], 1)}
      results[i]["sweep"].append(row)
      log(f"  {methods[i].name:12s} {label:45s} recall@10={r:.4f} qps={row['qps']:9.1f}")
      if r >= target:
        results[i]["reached"].add(group)
        if results[i]["best"] is None or row["qps"] > results[i]["best"]["qps"]:
          results[i]["best"] = row
  return results


def run_suite(x, q, methods, target, log) -> dict[str, Any]:
  import gemb
  t = time.perf_counter()
  truth, _ = gemb.retrievers.get("exact")().build(x).search(q, K)
  log(f"ground truth (gemb exact) in {time.perf_counter() - t:.1f}s")
  names = [m.name for m in methods]
  groups = [[m] for m in methods if m.name not in ("gemb-scann", "raw-scann")]
  if "gemb-scann" in names or "raw-scann" in names:
    groups.insert(0, [m for m in methods if m.name in ("gemb-scann", "raw-scann")])
  results = {}
  for group in groups:
    built = {}
    for m in group:
      log(f"[{m.name}] building")
      built[m.name] = build(m, x)
      log(f"  build {built[m.name]['build_s']}s, mem +{built[m.name]['mem_mb']} MB")
    for m, res in zip(group, sweep(group, q, truth, target, log)):
      best = res["best"]
      results[m.name] = dict(built[m.name], sweep=res["sweep"],
                             qps=None if best is None else best["qps"],
                             recall=(max(r["recall"] for r in res["sweep"]) if best is None
                                     else best["recall"]),
                             setting=None if best is None else best["setting"])
      r = results[m.name]
      log(f"  -> {m.name}: qps@recall>={target}: {r['qps']} ({r['setting']})")
      m.close()
    gc.collect()
  return results


def stdlib_docstrings(limit: int) -> list[str]:
  """First paragraphs of docstrings in the stdlib's .py files, read with ast (nothing imported)."""
  root = pathlib.Path(sysconfig.get_paths()["stdlib"])
  seen, out = set(), []
  for path in sorted(root.rglob("*.py")):
    if "site-packages" in path.parts or "test" in path.parts or "tests" in path.parts:
      continue
    try:
      tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, OSError):
      continue
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(node)
        if not doc:
          continue
        para = " ".join(doc.strip().split("\n\n")[0].split())
        if len(para) >= 25 and para not in seen:
          seen.add(para)
          out.append(para[:400])
          if len(out) >= limit:
            return out
  return out


def real_embeddings(n: int, cache: pathlib.Path, log) -> np.ndarray:
  path = cache / f"stdlib_docstrings_minilm-l6_{n}.npy"
  if path.exists():
    log(f"real corpus: cached embeddings {path}")
    return np.load(path)
  texts = stdlib_docstrings(n)
  log(f"real corpus: embedding {len(texts)} stdlib docstrings with gemb preset minilm-l6 ...")
  from gemb.model.encoder import load
  enc = load("minilm-l6")
  t = time.perf_counter()
  emb = enc.embed(texts, batch_size=128)
  log(f"  embedded in {time.perf_counter() - t:.1f}s -> {emb.shape}")
  cache.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp.npy")
  np.save(tmp, emb)
  os.replace(tmp, path)
  return emb


def main(argv=None) -> dict[str, Any]:
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--n", type=int, default=1_000_000)
  ap.add_argument("--d", type=int, default=128)
  ap.add_argument("--queries", type=int, default=1000)
  ap.add_argument("--target", type=float, default=0.95)
  ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
  ap.add_argument("--real-n", type=int, default=10_000)
  ap.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("/tmp/gemb_bench_cache"))
  ap.add_argument("--skip", default="", help="comma-separated method names to leave out")
  args = ap.parse_args(argv)
  t0 = time.perf_counter()

  def log(msg):
    print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)

  import faiss
  import hnswlib  # noqa: F401  (fail early if a competitor is missing)
  import jax
  import scann  # noqa: F401
  log(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, threads={args.threads}, "
      f"jax {jax.__version__} on {jax.devices()[0].platform}, faiss {faiss.__version__}")

  def methods():
    all_methods = [GembScann(), RawScann(),
                   FaissIVF("IVF{nlist},Flat", "faiss-ivf-flat", args.threads),
                   FaissIVF("IVF{nlist},PQ{m}x4fs,RFlat", "faiss-ivf-pq-fs+refine", args.threads),
                   FaissHNSW(args.threads), Hnswlib(args.threads), GembExact()]
    skip = set(filter(None, args.skip.split(",")))
    return [m for m in all_methods if m.name not in skip]

  centers = max(1, args.n // 50)
  log(f"synthetic corpus: {args.n} x {args.d}, {centers} clusters")
  x = clustered(args.n, args.d, centers, seed=0)
  q = clustered(args.queries, args.d, centers, seed=1)
  synthetic = run_suite(x, q, methods(), args.target, log)
  del x
  gc.collect()

  real = None
  if args.real_n:
    emb = real_embeddings(args.real_n, args.cache, log)
    n_q = min(500, len(emb) // 10)
    xr, qr = emb[n_q:], emb[:n_q]
    log(f"real corpus: {len(xr)} x {xr.shape[1]} minilm-l6 embeddings, {n_q} held-out queries")
    real = run_suite(xr, qr, methods(), args.target, log)

  def headline(results):
    ok = {k: v["qps"] for k, v in results.items() if v["qps"] is not None}
    g, raw = ok.get("gemb-scann"), ok.get("raw-scann")
    others = {k: v for k, v in ok.items() if k not in ("gemb-scann", "raw-scann")}
    return {
        "qps_at_target": {k: v["qps"] for k, v in results.items()},
        "recall": {k: v["recall"] for k, v in results.items()},
        "build_s": {k: v["build_s"] for k, v in results.items()},
        "mem_mb": {k: v["mem_mb"] for k, v in results.items()},
        "gemb_scann_over_raw_scann": None if not (g and raw) else round(g / raw, 3),
        "gemb_scann_within_5pct_of_raw": None if not (g and raw) else g >= 0.95 * raw,
        "gemb_scann_ahead_of_others": None if g is None else all(g > v for v in others.values()),
    }

  summary = {"n": args.n, "d": args.d, "queries": args.queries, "k": K,
             "target_recall": args.target, "threads": args.threads,
             "synthetic": headline(synthetic)}
  if real is not None:
    summary["real_minilm_l6"] = dict(headline(real), n=len(xr), d=int(xr.shape[1]))
  summary["total_s"] = round(time.perf_counter() - t0, 1)
  print(json.dumps(summary, sort_keys=True))
  return summary


if __name__ == "__main__":
  main()
