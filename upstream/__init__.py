"""shelfwise.upstream."""
