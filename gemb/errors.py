"""User-facing errors.

Everything a user can fix by changing a spec, a config key or an input raises a subclass of
`GembError`; the CLI turns these into a short message and exit code 2 instead of a traceback.
"""


class GembError(Exception):
  """Base class for errors caused by user input (specs, configs, data)."""


class SpecError(GembError, ValueError):
  """A component spec such as ``"infonce(temperature=0.05)"`` could not be parsed or bound."""


class UnknownComponentError(GembError, LookupError):
  """A registry lookup named a component that is not registered."""

  def __str__(self):  # LookupError would repr() the message; keep it readable.
    return str(self.args[0]) if self.args else ""


class DuplicateComponentError(GembError, ValueError):
  """Two components were registered under the same name in one registry."""


class ConfigError(GembError, ValueError):
  """A recipe, config key or command-line override is invalid."""


class InputError(GembError, ValueError):
  """An input item (text, image, audio, video, vectors) is malformed."""
