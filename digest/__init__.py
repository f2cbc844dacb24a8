"""Outbound mail: digests and check-in prompts, the mail renderer, the outbox sender."""
