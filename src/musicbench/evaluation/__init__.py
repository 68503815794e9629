"""Evaluation runner, results schema and reports."""
