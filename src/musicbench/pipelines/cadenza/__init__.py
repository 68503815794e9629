"""Cadenza challenge recipes: CAD1 Task 1 (headphones), protocol-exact, and their demixers and files."""
