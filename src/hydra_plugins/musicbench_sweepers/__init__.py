"""musicbench's Hydra sweeper plugins (Hydra loads plugins from the ``hydra_plugins`` namespace only)."""
