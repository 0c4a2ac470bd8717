"""Runs a config's Global.mode (check_dataset, train, evaluate, export, predict): the one dispatcher the CLI calls."""
