"""The recipes that ship with gemb: `quickstart`, `train`, `eval`, `coldstart`.

Each module is a recipe file (``get_config(variant: str = "")``), loaded by path through
`gemb.config`, not imported as a package module; `gemb list recipes` shows them together with
``./recipes/*.py`` and the recipes that plugins add through the ``gemb.recipes`` entry points.
"""
