"""wattwise.telemetry layer."""
