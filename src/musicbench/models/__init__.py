"""LightningModules by task family."""
