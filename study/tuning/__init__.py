"""The search (stage 1): budgets, the plan checked before Ray starts, one Optuna study per cell, the
per-cell ASHA scheduler, and the Tuner run that writes the experiment directory."""
