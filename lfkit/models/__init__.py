"""lfkit.models (see DESIGN.md for what this module owns)."""
