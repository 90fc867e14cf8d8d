"""Audiences: segment and computed-trait definitions (evaluation follows in later steps)."""
