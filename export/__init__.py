"""shelfwise.export."""
