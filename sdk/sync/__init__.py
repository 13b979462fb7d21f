"""Sync: the wire protocol, private summaries, the durable outbox, upload and downstream."""
