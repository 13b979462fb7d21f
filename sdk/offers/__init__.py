"""Offers: definitions, pure rule evaluation, the store engine, redemption, codes."""
