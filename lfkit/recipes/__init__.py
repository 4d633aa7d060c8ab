"""lfkit.recipes (see DESIGN.md for what this module owns)."""
