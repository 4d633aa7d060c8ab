"""lfkit.registry (see DESIGN.md for what this module owns)."""
