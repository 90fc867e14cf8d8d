"""The in-process SMTP server fixture, shared by the email and journey tests."""

from tests.activation.test_email import smtp  # noqa: F401
