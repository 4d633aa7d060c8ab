"""lfkit.data (see DESIGN.md for what this module owns)."""
