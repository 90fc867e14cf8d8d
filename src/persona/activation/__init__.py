"""Activation: what persona sends out to other systems (journeys, webhook deliveries)."""
