"""lfkit.recipes: LLaMA-Factory YAML recipes from Jinja templates and model presets.

``templates/llamafactory/*.yaml.j2`` hold the stages (sft, dpo, rm, export),
``templates/presets/*.yaml`` the models (read by :mod:`lfkit.models.presets`),
``templates/deepspeed`` the ZeRO configs and ``templates/launch`` the multi-GPU /
multi-node launcher. Every recipe is validated with
LLaMA-Factory's own argument parser before it is written.
"""

from lfkit.recipes.render import STAGES, dump_recipe, render_launch_script, render_recipe, write_recipe
from lfkit.recipes.validate import RecipeError, validate_recipe

__all__ = [
    "STAGES",
    "RecipeError",
    "dump_recipe",
    "render_launch_script",
    "render_recipe",
    "validate_recipe",
    "write_recipe",
]
