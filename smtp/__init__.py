"""Inbound mail: the SMTP listener, message parsing, reply extraction and processing.

`from smtp import extract_reply` is the public entry point of reply extraction, the
same code path the listener uses (see docs/reply-extraction.md).
"""

from smtp.extract import extract_reply, extract_reply_parts

__all__ = ["extract_reply", "extract_reply_parts"]
