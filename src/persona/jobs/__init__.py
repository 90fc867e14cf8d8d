"""Scheduled jobs over the whole store (RFM, personas) and the model traits they write."""
