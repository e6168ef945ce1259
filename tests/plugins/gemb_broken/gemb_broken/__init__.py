"""A plugin whose import fails, the way a plugin with a missing dependency does."""

import gemb_dependency_that_is_not_installed  # noqa: F401

loss = None
