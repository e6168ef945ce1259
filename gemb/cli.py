"""The `gemb` command: ``gemb run RECIPE[:VARIANT]`` and ``gemb list [REGISTRY]``."""

from __future__ import annotations

import argparse
import sys
import textwrap
import warnings

from gemb import config as config_lib
from gemb import registry
from gemb.errors import GembError


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog="gemb", description="gemb: multimodal embeddings and cold-start exploration on JAX.")
  sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

  r = sub.add_parser(
      "run", help="run a recipe", description="Run a recipe: a built-in one (gemb list recipes), one from ./recipes/ or a plugin, or a path to a .py file.",
      epilog="example: gemb run quickstart:tiny --set train.steps=20 --workdir /tmp/qs")
  r.add_argument("recipe", metavar="RECIPE[:VARIANT]",
                 help="recipe name (see `gemb list recipes`) or a path to a recipe .py file, with an optional "
                      "variant, e.g. 'quickstart:tiny'")
  r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                 help="override a config key (repeatable), e.g. --set train.lr=1e-4")
  r.add_argument("--workdir", default=None,
                 help="where the run writes config, metadata, metrics and checkpoints "
                      "(default: runs/RECIPE[-VARIANT]/TIMESTAMP)")
  r.add_argument("--tensorboard", action="store_true",
                 help="also write the metrics as TensorBoard events to WORKDIR/tensorboard "
                      "(needs tensorboardX: pip install 'gemb[tensorboard]')")
  r.add_argument("--print-config", action="store_true",
                 help="print the resolved config and exit without running")
  r.add_argument("--debug", action="store_true",
                 help="show the full traceback of an error instead of a one-line message")

  ls = sub.add_parser("list", help="list registered components or recipes",
                      description="List components with the distribution that provided each.")
  ls.add_argument("registry", nargs="?", default=None,
                  help=f"one of: {', '.join(registry.ALL)}, recipes (default: all)")
  ls.add_argument("--debug", action="store_true", help="show tracebacks")
  return p


def _list(which: str | None) -> None:
  if which == "recipes":
    for src in config_lib.recipe_sources():
      print(f"{src.name:24s} {src.origin:22s} {src.path}")
    return
  kinds = [which] if which else list(registry.ALL)
  if which is None:  # everything: the recipes too, as a section like the registries'
    print("recipes (gemb run NAME[:VARIANT]; ./recipes/, built-in, plugins):")
    for src in config_lib.recipe_sources():
      print(f"  {src.name:24s} {src.origin:22s} {src.path}")
  for kind in kinds:
    reg = registry.registry_for(kind)
    entries = reg.entries()
    print(f"{kind} ({reg.description}):")
    if not entries:
      print("  (none)")
    for e in entries:
      desc = textwrap.shorten(e.description, 70) if e.description else ""
      print(f"  {e.name:24s} {e.origin:22s} {desc}")
  failed = [p for p in registry.loaded_plugins() if p.error]
  for p in failed:
    print(f"failed plugin: {p.distribution} {p.version} -> {p.group}:{p.name}: {p.error}")


def main(argv: list[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  try:
    if args.command == "list":
      with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # failures are printed in the listing
        _list(args.registry)
      return 0
    if args.command == "run":
      from gemb import run as run_lib
      if args.print_config:
        recipe = config_lib.find_recipe(args.recipe)
        cfg = config_lib.apply_overrides(config_lib.load_config(recipe), args.overrides)
        print(cfg)
        return 0
      run_lib.run_recipe(args.recipe, args.overrides, args.workdir, tensorboard=args.tensorboard)
      return 0
  except KeyboardInterrupt:
    print("gemb: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # one line (exit 2 for the user's input, 1 for gemb's own bugs)
    if args.debug:
      raise
    message, code = describe_error(e)
    print(f"gemb: error: {message}", file=sys.stderr)
    return code
  return 1


def describe_error(e: BaseException) -> tuple[str, int]:
  """A one-line message for an error, and the exit code: 2 when the user can fix it (a
  GembError, or an OS error about a path: permissions, a read-only disk, a full disk)."""
  if isinstance(e, GembError):
    return str(e), 2
  if isinstance(e, OSError) and (e.filename is not None or e.errno is not None):
    what = e.strerror or type(e).__name__
    where = f" {e.filename}" + (f" -> {e.filename2}" if e.filename2 else "") if e.filename else ""
    return (f"{what}:{where}. Check that the path exists and is writable, or pick another one "
            "(--debug shows the traceback).", 2)
  return (f"{type(e).__name__}: {e} (an internal error; rerun with --debug for the traceback "
          "and report it).", 1)


if __name__ == "__main__":
  sys.exit(main())
