"""The vocabulary at the bottom of the import graph: scientific factors and their values, statuses,
metric names, and the typed configuration of one training run. Pure Python: no Ray, no PyTorch."""
