"""Datamodules, datasets, dataset generators and manifests."""
