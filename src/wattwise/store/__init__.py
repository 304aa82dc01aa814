"""wattwise.store layer."""
