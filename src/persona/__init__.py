"""persona: self-hosted real-time customer data and personalization engine."""
