"""lfkit.reward (see DESIGN.md for what this module owns)."""
