"""lfkit.pipeline (see DESIGN.md for what this module owns)."""
