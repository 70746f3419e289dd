"""Scripts the repair stage runs inside the target image (not imported by farm itself)."""
