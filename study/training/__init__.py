"""Networks and plain training: the models (placement is a constructor argument), the epoch loop with
its checkpoint, and train-then-test for final evaluation. No Ray."""
