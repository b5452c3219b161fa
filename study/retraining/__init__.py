"""Retraining after the search: which trials are picked, stage 2 on seeds or folds with its summary
and tests, and the final evaluation on the test set."""
