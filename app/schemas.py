"""The JSON shapes of the API (its OpenAPI schema at /docs comes from these)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel


class TeamOut(BaseModel):
    slug: str
    name: str
    address: str
    checkin_question: str


class MemberOut(BaseModel):
    email: str
    name: str
    timezone: str
    digest_cadence: str
    digest_hour: int


class ThreadOut(BaseModel):
    id: int
    team: str
    title: str
    checkin_date: date | None
    created_at: datetime
    last_activity_at: datetime


class AuthorOut(BaseModel):
    id: int
    name: str
    email: str


class AttachmentOut(BaseModel):
    id: int
    filename: str
    content_type: str
    size: int
    url: str


class UpdateOut(BaseModel):
    id: int
    parent_id: int | None
    depth: int  # 0 for a thread's first posts; updates come in tree order (depth first)
    author: AuthorOut
    body: str
    quoted: str
    extraction_confident: bool
    placed_by: str
    created_at: datetime
    edited_at: datetime | None
    # For a check-in answered after its day: the author's local date when they answered.
    answered_on: date | None
    attachments: list[AttachmentOut]


class ThreadDetailOut(ThreadOut):
    updates: list[UpdateOut]


class SearchHitOut(BaseModel):
    update_id: int
    thread_id: int
    thread_title: str
    team: str
    author: AuthorOut
    snippet: str
    snippet_html: str  # the snippet, HTML-escaped, with matches in <mark>
    created_at: datetime


class QuarantinedOut(BaseModel):
    id: int
    received_at: datetime
    mail_from: str
    rcpt_tos: list[str]
    message_id: str | None
    reason: str | None
    detail: str | None


class ErrorOut(BaseModel):
    """Every refusal the API gives: what went wrong and, where there is one, what to do."""

    detail: str
