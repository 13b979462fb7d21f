"""Recommendations: the shopper's context, the surfaces, business filters, search."""
