"""shelfwise.training."""
