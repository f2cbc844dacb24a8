"""`tidings team webhook`: a team's chat webhooks (Slack- or Teams-compatible)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from app import webhooks
from app.cli import JsonOpt, print_json, say, with_session
from app.models import TeamWebhook

webhook_cli = typer.Typer(
    help="Post a team's news to chat channels (Slack- or Teams-compatible incoming webhooks).",
    no_args_is_help=True,
)

Slug = Annotated[str, typer.Argument(help="The team's slug.")]
Url = Annotated[str, typer.Argument(help="The channel's incoming-webhook URL (http or https).")]


def _when(hook: TeamWebhook) -> str:
    return f"{hook.hour:02d}:00 ({hook.timezone})"


@webhook_cli.command("add")
def webhook_add(
    slug: Slug,
    url: Url,
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="slack (Slack: text and Block Kit blocks) or teams (Microsoft Teams: an"
            " Adaptive Card, for a Workflows or connector webhook).",
        ),
    ] = "slack",
    hour: Annotated[int, typer.Option("--hour", help="Local hour, 0-23, of the day's post.")] = 9,
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone of --hour.")] = "UTC",
) -> None:
    """Post the team's news to a chat channel: once a day at --hour, the updates since the
    last post (blockers first, then by thread, with links to the archive), when there are
    any; and each urgent update (a blocker, or text starting "Urgent:") as soon as it
    arrives. Only what is posted from now on is sent, not the team's history. Adding the
    same URL again changes its kind and hour.

    Example: tidings team webhook add eng https://hooks.slack.com/services/T0/B0/XX --hour 10
    --tz Europe/Berlin
    """
    hook = with_session(webhooks.add_webhook, slug, url, kind, hour, tz)
    say(f"{slug.lower()} posts to this {hook.kind} webhook from now on:")
    say(
        f"- every day at {_when(hook)}: the updates since the last post, blockers first, by"
        " thread with links to the archive (nothing when nothing is new);"
    )
    say(
        "- each urgent update (a blocker, or text starting 'Urgent:' or 'URGENT') within a"
        " minute of arriving; it is in that day's post too."
    )
    say(f"See how posts went with: tidings team webhook list {slug.lower()}")


@webhook_cli.command("list")
def webhook_list(slug: Slug, as_json: JsonOpt = False) -> None:
    """Show a team's webhooks, when each posts, and how its last post went (sent, waiting
    to be retried, or failed with the channel's answer).

    Example: tidings team webhook list eng --json
    """

    def rows(session: Any) -> list[dict[str, Any]]:
        found = []
        for state in webhooks.team_webhooks(session, slug):
            hook, post = state.webhook, state.last_post
            last = None
            if post is not None:
                last = {
                    "status": post.status,
                    "queued_at": post.created_at.isoformat(timespec="seconds"),
                    "sent_at": post.sent_at.isoformat(timespec="seconds") if post.sent_at else None,
                    "error": post.last_error,
                }
            found.append(
                {
                    "url": hook.url,
                    "kind": hook.kind,
                    "hour": hook.hour,
                    "timezone": hook.timezone,
                    "last_post": last,
                }
            )
        return found

    found = with_session(rows)
    if as_json:
        print_json(found)
        return
    if not found:
        say(f"No webhooks. Add one: tidings team webhook add {slug} URL --kind slack")
    for r in found:
        last = r["last_post"]
        if last is None:
            state = "nothing posted yet"
        elif last["error"]:
            state = f"last post {last['status']}: {last['error']}"
        else:
            state = f"last post {last['status']}"
        when = f"{r['hour']:02d}:00 {r['timezone']}"
        typer.echo(f"{r['kind']:<6} {when:<24} {r['url']}  ({state})")


@webhook_cli.command("remove")
def webhook_remove(slug: Slug, url: Url) -> None:
    """Stop posting to a chat channel; posts queued for it and not sent yet are dropped.

    Example: tidings team webhook remove eng https://hooks.slack.com/services/T0/B0/XX
    """
    cancelled = with_session(webhooks.remove_webhook, slug, url)
    say(f"{slug.lower()} no longer posts to {url.strip()}.")
    if cancelled:
        say(f"{cancelled} queued post(s) were dropped.")
