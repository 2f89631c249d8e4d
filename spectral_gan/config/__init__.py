"""The composed Hydra config: the resolvers the YAML files use (``resolvers.py``), the config
tree as printed (``tree.py``) and the part of it a checkpoint stores (``run_config.py``)."""
