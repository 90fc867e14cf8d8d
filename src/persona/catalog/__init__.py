"""The product catalog: items imported from a shop's files or written through the API, and
what product events say about them; what recommendations read."""
