"""lfkit.models: the models lfkit knows by name.

* :mod:`lfkit.models.embedded`: embedded models (``tiny``, ``smollm2-135m``) built once into the
  cache, the model marker file, and :func:`~lfkit.models.embedded.resolve_model` (folder or
  embedded name -> folder).
* :mod:`lfkit.models.presets`: model presets (``templates/presets/*.yaml``), read by the recipe
  renderer and by the generation backends (model + LLaMA-Factory template).
* :mod:`lfkit.models.tiny`, :mod:`lfkit.models.smollm2`: the builders of the embedded models.

This file holds only the package's error, so the builders can raise it without importing
the registry that imports them.
"""

from __future__ import annotations

from lfkit.errors import LfkitError


class ModelError(LfkitError, RuntimeError):
    """An embedded model cannot be prepared (unknown name, missing package)."""
