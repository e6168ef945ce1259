"""One `Registry` type; one instance per kind of component.

A component is registered under a name, either in code::

    @gemb.losses.register("infonce")
    def infonce(...): ...

or by a third-party distribution through an entry point in the group ``gemb.<kind>``::

    [project.entry-points."gemb.losses"]
    my_loss = "my_pkg.losses:my_loss"

and looked up by a *spec*, a name with optional literal arguments::

    gemb.losses.get("infonce(temperature=0.05, two_sided=True)")

Specs are parsed with `ast` and every argument must be a Python literal (`ast.literal_eval`);
nothing in a spec is ever evaluated as code.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import re
import threading
import warnings
from typing import Any, Callable, Iterator

from gemb.errors import DuplicateComponentError, SpecError, UnknownComponentError

ENTRY_POINT_PREFIX = "gemb."
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")


@dataclasses.dataclass(frozen=True)
class Entry:
  """One registered component."""

  name: str
  obj: Any
  origin: str  # the distribution (or "__main__"/module) that provided it
  description: str


@dataclasses.dataclass(frozen=True)
class PluginRecord:
  """One entry point that discovery loaded (or failed to load)."""

  group: str
  name: str
  distribution: str
  version: str
  error: str | None = None


_plugin_records: list[PluginRecord] = []
_plugin_lock = threading.RLock()


def loaded_plugins() -> list[PluginRecord]:
  """Entry points discovered so far across all registries, with their distribution and version."""
  with _plugin_lock:
    return list(_plugin_records)


MAX_SPEC_CHARS = 10_000  # a spec or a --set literal longer than this is refused unparsed
MAX_LITERAL_DEPTH = 32  # brackets and unary operators nested deeper than this are refused


def check_literal_size(text: str, what: str, error: type[Exception]) -> None:
  """Refuses text that `ast` would need unbounded memory or recursion for: too long, or nested
  (brackets, or unary +/-/~ chains such as 100,000 '-') deeper than MAX_LITERAL_DEPTH."""
  if len(text) > MAX_SPEC_CHARS:
    raise error(f"{what}: {len(text)} characters; at most {MAX_SPEC_CHARS} are accepted.")
  depth = run = 0
  for ch in text:
    if ch in "([{":
      depth += 1
    elif ch in ")]}":
      depth -= 1
    run = run + 1 if ch in "+-~" else (run if ch.isspace() else 0)
    if depth > MAX_LITERAL_DEPTH or run > MAX_LITERAL_DEPTH:
      raise error(f"{what}: nested more than {MAX_LITERAL_DEPTH} levels deep (brackets or "
                  "signs); write the value plainly.")


def parse_spec(spec: str) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
  """Splits ``"name(1, k='x')"`` into ``("name", (1,), {"k": "x"})``.

  Names may contain ``-``, ``.`` and ``/`` (``"minilm-l6"``), which is why the name is matched
  by a regex and only the argument list goes through `ast`.
  """
  if not isinstance(spec, str):
    raise SpecError(f"A component spec must be a string, got {type(spec).__name__}: {spec!r}.")
  if len(spec) > MAX_SPEC_CHARS:
    raise SpecError(f"Invalid spec {spec[:40]!r}...: {len(spec)} characters; a spec may have at "
                    f"most {MAX_SPEC_CHARS}.")
  text = spec.strip()
  m = _NAME_RE.match(text)
  if not m:
    raise SpecError(
        f"Invalid spec {spec!r}: it must start with a component name, e.g. 'infonce' or "
        "'infonce(temperature=0.05)'.")
  name, rest = m.group(0), text[m.end():].strip()
  if not rest:
    return name, (), {}
  if not (rest.startswith("(") and rest.endswith(")")):
    raise SpecError(
        f"Invalid spec {spec!r}: after the name {name!r} only an argument list in parentheses "
        f"may follow, e.g. '{name}(k=1)'.")
  check_literal_size(rest, f"Invalid spec {spec[:60]!r}", SpecError)
  try:
    call = ast.parse("f" + rest, mode="eval").body
  except (SyntaxError, MemoryError, RecursionError) as e:
    if not isinstance(e, SyntaxError):
      raise SpecError(f"Invalid spec {spec[:60]!r}: too deeply nested to parse.") from None
    raise SpecError(f"Invalid spec {spec!r}: the argument list is not valid syntax ({e.msg}).") from None
  if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
    raise SpecError(f"Invalid spec {spec!r}: expected name(arg, key=value, ...).")

  def literal(node: ast.AST, what: str) -> Any:
    try:
      return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
      raise SpecError(
          f"Invalid spec {spec!r}: {what} must be a Python literal (number, string, bool, None, "
          f"tuple, list or dict), got `{ast.unparse(node)}`.") from None

  args = []
  for i, a in enumerate(call.args):
    if isinstance(a, ast.Starred):
      raise SpecError(f"Invalid spec {spec!r}: *args are not allowed.")
    args.append(literal(a, f"positional argument {i}"))
  kwargs = {}
  for kw in call.keywords:
    if kw.arg is None:
      raise SpecError(f"Invalid spec {spec!r}: **kwargs are not allowed.")
    kwargs[kw.arg] = literal(kw.value, f"argument {kw.arg!r}")
  return name, tuple(args), kwargs


def _describe(obj: Any) -> str:
  doc = inspect.getdoc(obj) or ""
  return doc.strip().splitlines()[0] if doc.strip() else ""


@functools.lru_cache(maxsize=None)
def _module_distributions() -> dict[str, list[str]]:
  return importlib.metadata.packages_distributions()


def _origin_of(obj: Any) -> str:
  module = getattr(obj, "__module__", None) or ""
  top = module.split(".")[0]
  if not top:
    return "unknown"
  if top == "__main__":
    return "__main__"
  dists = _module_distributions().get(top)
  return dists[0] if dists else top


class Registry:
  """Named components of one kind, with entry-point plugins discovered lazily."""

  def __init__(self, kind: str, description: str = "", builtin_modules: tuple[str, ...] = ()):
    self.kind = kind
    self.description = description
    # gemb's own modules whose import registers the built-in components of this kind; imported
    # on first lookup so that `import gemb` stays cheap.
    self.builtin_modules = tuple(builtin_modules)
    self.group = ENTRY_POINT_PREFIX + kind
    self._entries: dict[str, Entry] = {}
    self._discovered = False
    self._lock = threading.RLock()
    # Called as validator(spec, built, registered_obj) after `build`; raises on a broken contract.
    self.validator: Callable[[str, Any, Any], Any] | None = None

  def __repr__(self):
    return f"Registry({self.kind!r}, {len(self._entries)} registered)"

  # -- registration ----------------------------------------------------------------------------

  def register(self, name: str, obj: Any = None, *, description: str | None = None,
               origin: str | None = None):
    """Registers `obj` under `name`; without `obj`, returns a decorator.

    Raises DuplicateComponentError when `name` is taken, naming both origins.
    """
    if obj is None:
      def decorator(o):
        self.register(name, o, description=description, origin=origin)
        return o
      return decorator
    if not isinstance(name, str) or _NAME_RE.fullmatch(name) is None:
      raise SpecError(
          f"Cannot register {name!r} in gemb.{self.kind}: names must match "
          f"{_NAME_RE.pattern} (letters, digits, '_', '-', '.', '/').")
    entry = Entry(name=name, obj=obj, origin=origin or _origin_of(obj),
                  description=description if description is not None else _describe(obj))
    with self._lock:
      old = self._entries.get(name)
      if old is not None and old.obj is obj:
        return obj  # the same object again, e.g. a module imported twice
      if old is not None:
        raise DuplicateComponentError(
            f"gemb.{self.kind} already has {name!r} (from {old.origin}: {_qualname(old.obj)}); "
            f"refusing the one from {entry.origin} ({_qualname(obj)}). Pick another name.")
      self._entries[name] = entry
    return obj

  def unregister(self, name: str) -> None:
    with self._lock:
      self._entries.pop(name, None)

  # -- discovery -------------------------------------------------------------------------------

  def _discover(self) -> None:
    if self._discovered:
      return
    with self._lock:
      if self._discovered:
        return
      self._discovered = True  # set first: a plugin that looks itself up must not recurse
      try:
        for module in self.builtin_modules:
          importlib.import_module(module)
      except BaseException:
        self._discovered = False
        raise
      for ep in importlib.metadata.entry_points(group=self.group):
        dist = ep.dist.name if ep.dist is not None else "unknown"
        version = ep.dist.version if ep.dist is not None else "?"
        try:
          obj = ep.load()
          self.register(ep.name, obj, origin=dist)
          error = None
        except KeyboardInterrupt:
          raise
        except BaseException as e:  # a broken plugin (even one calling sys.exit) must not take
          error = f"{type(e).__name__}: {e}"  # the others down
          warnings.warn(
              f"gemb: plugin distribution {dist} {version} could not provide {ep.name!r} to "
              f"gemb.{self.kind} (entry point {ep.value}): {error}. Other components are "
              f"unaffected; fix or uninstall {dist}.", RuntimeWarning, stacklevel=3)
        with _plugin_lock:
          _plugin_records.append(PluginRecord(self.group, ep.name, dist, version, error))

  # -- lookup ----------------------------------------------------------------------------------

  def names(self) -> list[str]:
    self._discover()
    return sorted(self._entries)

  def entries(self) -> list[Entry]:
    self._discover()
    return [self._entries[n] for n in sorted(self._entries)]

  def entry(self, name: str) -> Entry:
    self._discover()
    try:
      return self._entries[name]
    except KeyError:
      raise UnknownComponentError(self._unknown_message(name)) from None

  def __contains__(self, name: str) -> bool:
    self._discover()
    return name in self._entries

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self.names())

  def get(self, spec: str) -> Any:
    """Returns the component named by `spec`, with the spec's arguments bound.

    ``get("exact")`` returns the registered object itself; ``get("exact(chunk=4096)")`` returns
    ``functools.partial(obj, chunk=4096)`` after checking the arguments against its signature.
    """
    name, args, kwargs = parse_spec(spec)
    obj = self.entry(name).obj
    if not args and not kwargs:
      return obj
    if not callable(obj):
      raise SpecError(f"gemb.{self.kind} component {name!r} takes no arguments, but the spec "
                      f"{spec!r} gives some.")
    try:
      sig = inspect.signature(obj)
    except (TypeError, ValueError):
      sig = None
    if sig is not None:
      try:
        sig.bind_partial(*args, **kwargs)
      except TypeError as e:
        params = [p for p in sig.parameters if p not in ("self", "cls")]
        raise SpecError(f"Spec {spec!r} does not fit gemb.{self.kind} component {name!r}: {e}. "
                        f"It accepts: {', '.join(params) or 'no arguments'}.") from None
    return functools.partial(obj, *args, **kwargs)

  def build(self, spec: str, *args, **kwargs) -> Any:
    """``get(spec)(*args, **kwargs)``: look up and instantiate/call in one step, then the kind's
    `validator` (e.g. the dataset protocol) checks what came out."""
    out = self.get(spec)(*args, **kwargs)
    if self.validator is not None:
      self.validator(spec, out, self.entry(parse_spec(spec)[0]).obj)
    return out

  def _unknown_message(self, name: str) -> str:
    with _plugin_lock:
      failed = [p for p in _plugin_records
                if p.group == self.group and p.name == name and p.error]
    if failed:
      p = failed[-1]
      return (f"gemb.{self.kind} component {name!r} comes from the plugin distribution "
              f"{p.distribution} {p.version}, which failed to load: {p.error}. Fix or reinstall "
              f"{p.distribution}.")
    known = sorted(self._entries)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(f"{n} ({self._entries[n].origin})" for n in known) or "none"
    return (f"Unknown gemb.{self.kind} component {name!r}.{hint} Known: {listing}. "
            f"Plugins add components through the entry-point group {self.group!r}.")

  # -- tests -----------------------------------------------------------------------------------

  @contextlib.contextmanager
  def temporary(self, *, empty: bool = False):
    """Within the block, registrations (and removals) are private and undone on exit.

    With ``empty=True`` the registry starts the block with no entries (plugins not discovered).
    The built-in modules and plugins are discovered first, so that a module imported for the first
    time inside the block does not register into entries that the exit then throws away.
    """
    self._discover()
    with self._lock:
      saved, saved_discovered = dict(self._entries), self._discovered
      if empty:
        self._entries, self._discovered = {}, True
    try:
      yield self
    finally:
      with self._lock:
        self._entries, self._discovered = saved, saved_discovered


def _qualname(obj: Any) -> str:
  mod = getattr(obj, "__module__", "?")
  return f"{mod}.{getattr(obj, '__qualname__', type(obj).__name__)}"


# The registries. Each kind's entry-point group is "gemb.<kind>".
tokenizers = Registry("tokenizers", "modality tokenizers: raw input part -> token embeddings",
                      ("gemb.model.tokenizers", "gemb.model.tower_tokenizers"))
losses = Registry("losses", "training losses over embeddings", ("gemb.train.losses",))
retrievers = Registry("retrievers", "nearest-neighbour retrieval backends", ("gemb.retrieval",))
policies = Registry("policies", "cold-start exploration policies", ("gemb.coldstart.policies",))
presets = Registry("presets", "model presets: architecture + weights", ("gemb.model.presets",))
datasets = Registry("datasets", "built-in and adapted datasets", ("gemb.data",))
tfds_adapters = Registry("tfds_adapters", "map a raw TFDS example to a gemb pair dict",
                         ("gemb.data.tfds",))
evaluators = Registry("evaluators", "evaluators: embed function -> named metrics",
                      ("gemb.evaluation",))
runners = Registry("runners", "run kinds that a recipe's `kind` selects (train, eval, ...)",
                   ("gemb.train.runner", "gemb.evaluation.runner", "gemb.coldstart.runner",
                    "gemb.quickstart"))

ALL: dict[str, Registry] = {r.kind: r for r in (
    tokenizers, losses, retrievers, policies, presets, datasets, tfds_adapters, evaluators,
    runners)}


def registry_for(kind: str) -> Registry:
  """Returns the registry named `kind` (e.g. "losses")."""
  try:
    return ALL[kind]
  except KeyError:
    close = difflib.get_close_matches(kind, list(ALL), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownComponentError(
        f"Unknown registry {kind!r}.{hint} Registries: {', '.join(ALL)}.") from None
