"""Plain nn.Modules (no training logic)."""
