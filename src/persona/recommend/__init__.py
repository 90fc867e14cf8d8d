"""Recommendations trained on the event log: interactions, baseline models (popularity,
trending, item-to-item, bought-together), stored model sets and the service that serves them."""
