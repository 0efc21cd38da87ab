"""Target generation at scale, the training loop and evaluation."""
