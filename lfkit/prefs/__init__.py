"""lfkit.prefs (see DESIGN.md for what this module owns)."""
