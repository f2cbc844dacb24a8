"""The `tidings` command line. Settings are read here, once, and passed down."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from app import logs, store
from app.db import make_engine, schema_is_current, session_scope, upgrade
from app.errors import TidingsError
from app.models import utcnow
from app.search import reindex
from app.settings import Settings
from app.views import describe_schedule, quarantined_out

T = TypeVar("T")

cli = typer.Typer(
    name="tidings",
    help=(
        "Tidings: email-first async check-ins.\n\n"
        "Start everything with `tidings serve`; manage teams and members with the other"
        " commands. Settings come from TIDINGS_* environment variables or .env."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
team_cli = typer.Typer(help="Create, rename, archive and list teams.", no_args_is_help=True)
member_cli = typer.Typer(
    help="Add, import, change, pause and list team members.", no_args_is_help=True
)
checkin_cli = typer.Typer(help="Check-in questions.", no_args_is_help=True)
digest_cli = typer.Typer(help="Digests.", no_args_is_help=True)
token_cli = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
quarantine_cli = typer.Typer(
    help="Mail that was kept but not posted: list it, release it, discard it.",
    no_args_is_help=True,
)
search_cli = typer.Typer(help="The full-text search index.", no_args_is_help=True)
alias_cli = typer.Typer(
    help="Other addresses a member writes from (each confirmed by a link sent to it).",
    no_args_is_help=True,
)
link_cli = typer.Typer(
    help="A team's link patterns: PROJ-123 or #45 in a post becomes a link to the tracker.",
    no_args_is_help=True,
)
thread_cli = typer.Typer(help="Threads in the archive.", no_args_is_help=True)
secret_cli = typer.Typer(help="Rotate the keys that sign reply addresses.", no_args_is_help=True)
for sub, name in [
    (db_cli, "db"),
    (team_cli, "team"),
    (member_cli, "member"),
    (checkin_cli, "checkin"),
    (digest_cli, "digest"),
    (token_cli, "token"),
    (quarantine_cli, "quarantine"),
    (search_cli, "search"),
    (secret_cli, "secret"),
    (thread_cli, "thread"),
]:
    cli.add_typer(sub, name=name)
member_cli.add_typer(alias_cli, name="alias")
team_cli.add_typer(link_cli, name="link")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def settings() -> Settings:
    return Settings()


def say(text: str) -> None:
    """Progress and notes go to stderr, so stdout stays clean for scripts."""
    if logs.json_enabled():  # TIDINGS_LOG_FORMAT=json: a JSON line like every other
        logs.note(text)
        return
    typer.echo(text, err=True)


def fail(error: TidingsError | str) -> None:
    if logs.json_enabled():  # TIDINGS_LOG_FORMAT=json: a JSON line like every other
        logging.getLogger(logs.NOTES).error("Error: %s", error)
        raise typer.Exit(1)
    typer.secho(f"Error: {error}", err=True, fg=typer.colors.RED)
    raise typer.Exit(1)


def ready_engine(cfg: Settings) -> Engine:
    """An engine on an up-to-date schema, or a clear error that says what to run."""
    engine = make_engine(cfg.database_url)
    url = engine.url.render_as_string(hide_password=True)
    try:
        current = schema_is_current(engine)
    except OperationalError as exc:
        fail(
            TidingsError(
                f"Cannot reach the database {url}: {exc.orig}",
                "Check TIDINGS_DATABASE_URL, and that the server is running.",
            )
        )
    if not current:
        fail(
            TidingsError(
                f"The database {url} is not set up for this version of Tidings.",
                "Run `tidings db upgrade` (`make run` does it for you).",
            )
        )
    return engine


def with_session(fn: Callable[..., T], *args: Any) -> T:
    engine = ready_engine(settings())
    try:
        with session_scope(engine) as session:
            return fn(session, *args)
    except TidingsError as exc:
        fail(exc)
        raise  # unreachable: fail() exits


def progress_line(label: str) -> Callable[[int, int], None]:
    """A progress counter on stderr, rewritten in place; silent when not a terminal."""

    def show(done: int, total: int) -> None:
        if sys.stderr.isatty() and (done == total or done % 50 == 0):
            end = "\n" if done == total else ""
            typer.echo(f"\r{label}: {done}/{total}", err=True, nl=False)
            typer.echo(end, err=True, nl=False)

    return show


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# Services ----------------------------------------------------------------------------------


def configure_logging(level: str, fmt: str = "text") -> None:
    """Text or JSON lines (TIDINGS_LOG_FORMAT), quiet libraries: see app/logs.py."""
    logs.configure_logging(level, fmt)


def _run(parts_kw: dict[str, bool], upgrade_first: bool, lmtp: bool = False) -> None:
    from app.cli.runtime import Parts, run_services

    cfg = settings()
    cfg.smtp_lmtp = cfg.smtp_lmtp or lmtp
    configure_logging(cfg.log_level, cfg.log_format)
    if upgrade_first:
        db_upgrade()
    engine = ready_engine(cfg)
    try:
        asyncio.run(run_services(cfg, engine, Parts(**parts_kw), say))
    except OSError as exc:
        fail(
            TidingsError(
                f"Could not start: {exc}",
                "Is another Tidings already running? Change TIDINGS_SMTP_PORT or"
                " TIDINGS_HTTP_PORT to use other ports.",
            )
        )
    except TidingsError as exc:
        fail(exc)
    say("Stopped.")


@cli.command()
def serve() -> None:
    """Upgrade the database, then run everything in one process: the SMTP listener,
    the web archive and API, and the worker (mail processing, digests, sending).

    Example: TIDINGS_MAIL_DOMAIN=updates.example.com tidings serve
    """
    _run({}, upgrade_first=True)


@cli.command("smtp")
def smtp_command(
    lmtp: Annotated[
        bool,
        typer.Option(
            "--lmtp",
            help="Speak LMTP instead of SMTP, for an MTA in front that delivers to Tidings"
            " over LMTP (Postfix: transport_maps = lmtp:inet:HOST:PORT). Same as"
            " TIDINGS_SMTP_LMTP=true.",
        ),
    ] = False,
) -> None:
    """Run only the SMTP listener (scale out: several listeners, one database).

    Example: TIDINGS_DATABASE_URL=postgresql+psycopg://db/tidings tidings smtp --lmtp
    """
    _run({"web": False, "worker": False}, upgrade_first=False, lmtp=lmtp)


@cli.command()
def web() -> None:
    """Run only the web archive and JSON API.

    Example: TIDINGS_HTTP_HOST=0.0.0.0 tidings web
    """
    _run({"smtp": False, "worker": False}, upgrade_first=False)


@cli.command()
def worker() -> None:
    """Run only the worker: process journaled mail, plan due digests, send the outbox.

    Example: TIDINGS_OUTBOUND_URL=smtp://relay.example.com:25 tidings worker
    """
    _run({"smtp": False, "web": False}, upgrade_first=False)


@db_cli.command("upgrade")
def db_upgrade() -> None:
    """Create the database, or bring its schema up to date (safe to run any time).

    Example: TIDINGS_DATABASE_URL=postgresql+psycopg://db/tidings tidings db upgrade
    """
    cfg = settings()
    url = make_engine(cfg.database_url).url.render_as_string(hide_password=True)
    say(f"Upgrading database {url} ...")
    try:
        upgrade(cfg.database_url)
    except OperationalError as exc:
        fail(
            TidingsError(
                f"Cannot reach the database {url}: {exc.orig}",
                "Check TIDINGS_DATABASE_URL, and that the server is running.",
            )
        )
    say("Database is up to date.")


# Teams and members ----------------------------------------------------------------------


@team_cli.command("create")
def team_create(
    slug: Annotated[str, typer.Argument(help="Short name; the team's address is SLUG@domain.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    public: Annotated[
        bool,
        typer.Option(
            "--public", help="Anyone who can reach the archive may read it (default: members)."
        ),
    ] = False,
) -> None:
    """Create a team; members post to it by mailing SLUG@mail-domain. Its archive is
    private to its members (they sign in by email) unless --public.

    Example: tidings team create eng --name "Engineering"
    """
    cfg = settings()
    team = with_session(store.create_team, slug, name or slug, public)
    visibility = "public archive" if team.public else "archive private to its members"
    say(f"Created team {team.slug} ({team.name}), {visibility}.")
    say(f"Members post by writing to {cfg.team_address(team.slug)}.")
    say(f"Next: tidings member add {team.slug} alice@example.com --name Alice --tz Europe/Berlin")


@team_cli.command("checkin")
def team_checkin(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    hour: Annotated[
        int | None, typer.Option("--hour", help="Local hour, 0-23, in each member's zone.")
    ] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop the scheduled check-in.")] = False,
    question: Annotated[
        list[str] | None,
        typer.Option(
            "--question", help="What to ask; repeat for several questions, asked in order."
        ),
    ] = None,
    blocker_question: Annotated[
        int | None,
        typer.Option(
            "--blocker-question",
            help="Which question (1, 2, ...) asks about blockers: answers to it that are not"
            " 'no'/'none' show at the top of the team's digest section until resolved.",
        ),
    ] = None,
) -> None:
    """Ask the team's check-in questions every weekday at a local hour, in each member's
    own time zone (or stop with --off). `tidings checkin send` still asks at once.

    Example: tidings team checkin eng --hour 16 --question "What did you get done?"
    --question "What's next?" --question "Anything blocking you?" --blocker-question 3
    """
    if off == (hour is not None):
        fail(
            TidingsError(
                "Give either --hour H or --off.",
                f"For example: tidings team checkin {slug} --hour 16",
            )
        )
    team = with_session(
        store.set_checkin, slug, None if off else hour, question or None, blocker_question
    )
    asked = " / ".join(f'"{q}"' for q in team.checkin_questions)
    if team.blocker_question:
        asked += f" (question {team.blocker_question} asks about blockers)"
    if team.checkin_hour is None:
        say(f"{team.slug}: no scheduled check-in; ask with `tidings checkin send {team.slug}`.")
    else:
        say(
            f"{team.slug}: {asked} every weekday at"
            f" {team.checkin_hour:02d}:00 in each member's time zone."
        )


@team_cli.command("rename")
def team_rename(
    slug: Annotated[str, typer.Argument(help="The team's slug now.")],
    new_slug: Annotated[
        str | None, typer.Argument(help="Its new slug (leave out to change only --name).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="A new display name.")] = None,
) -> None:
    """Give a team a new slug (its address becomes NEW@mail-domain), a new display name,
    or both. The old address and the reply addresses in mail sent before keep reaching
    the team, so nothing in anyone's mailbox stops working; no other team can take the
    old slug.

    Example: tidings team rename eng platform --name "Platform Engineering"
    """
    cfg = settings()
    team, old = with_session(store.rename_team, slug, new_slug, name)
    if team.slug != old:
        say(f"Team {old} is now {team.slug} ({team.name}).")
        say(f"Members post by writing to {cfg.team_address(team.slug)}.")
        say(
            f"Mail to {cfg.team_address(old)} and reply addresses in mail sent before still"
            f" reach {team.slug}."
        )
    else:
        say(f"Team {team.slug} is now called {team.name}.")


@team_cli.command("archive")
def team_archive(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    undo: Annotated[
        bool, typer.Option("--undo", help="Reopen an archived team: it takes posts again.")
    ] = False,
) -> None:
    """Archive a team that has finished: mail to it (and to its reply addresses) is refused
    with a 550 saying the team is archived, check-ins stop and no new updates reach
    digests. Its archive stays readable, and nothing is deleted. --undo reopens it.

    Example: tidings team archive launch-2026
    """
    team = with_session(store.archive_team, slug, not undo)
    if team.archived_at is None:
        say(f"{team.slug} is open again: members can post, and scheduled check-ins resume.")
    else:
        say(f"{team.slug} is archived: it takes no new posts and asks no check-ins.")
        say(f"Its archive stays readable. Undo with: tidings team archive {team.slug} --undo")


@team_cli.command("list")
def team_list(as_json: JsonOpt = False) -> None:
    """List teams and their addresses, with archived teams and former slugs marked.

    Example: tidings team list --json
    """
    cfg = settings()

    def rows_of(session: Any) -> list[dict[str, Any]]:
        rows = []
        for t in store.list_teams(session):
            row: dict[str, Any] = {
                "slug": t.slug,
                "name": t.name,
                "address": cfg.team_address(t.slug),
            }
            # Only when set, so that the usual row stays as scripts know it.
            if t.archived_at is not None:
                row["archived_at"] = t.archived_at.isoformat(timespec="seconds")
            former = store.former_slugs(session, t.id)  # type: ignore[arg-type]
            if former:
                row["former_slugs"] = former
            rows.append(row)
        return rows

    rows = with_session(rows_of)
    if as_json:
        print_json(rows)
    elif not rows:
        say('No teams yet. Create one: tidings team create eng --name "Engineering"')
    for row in rows if not as_json else []:
        notes = []
        if "archived_at" in row:
            notes.append(f"archived {row['archived_at'][:10]}")
        if "former_slugs" in row:
            notes.append(f"formerly {', '.join(row['former_slugs'])}")
        extra = f"  ({'; '.join(notes)})" if notes else ""
        typer.echo(f"{row['slug']:<16} {row['name']:<24} {row['address']}{extra}")


@member_cli.command("add")
def member_add(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    email: Annotated[str, typer.Argument(help="The member's email address.")],
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    tz: Annotated[str, typer.Option("--tz", help="IANA time zone, e.g. Europe/Berlin.")] = "UTC",
    digest: Annotated[
        str, typer.Option("--digest", help="daily, weekly, immediate or off.")
    ] = "daily",
    hour: Annotated[int, typer.Option("--hour", help="Local hour for the digest, 0-23.")] = 9,
) -> None:
    """Add someone to a team (or update them if already there).

    Example: tidings member add eng alice@example.com --name Alice --tz Europe/Berlin
    """
    person = with_session(store.add_member, slug, email, name, tz, digest, hour)
    say(
        f"{person.name} <{person.email}> is a member of {slug.lower()};"
        f" digest {describe_schedule(person)}."
    )


@member_cli.command("list")
def member_list(
    slug: Annotated[str, typer.Argument(help="The team's slug.")], as_json: JsonOpt = False
) -> None:
    """List a team's members and their digest settings.

    Example: tidings member list eng
    """
    people, admins = with_session(
        lambda session: (store.list_members(session, slug), store.team_admins(session, slug))
    )
    rows = [
        {
            "email": p.email,
            "name": p.name,
            "timezone": p.timezone,
            "digest": p.digest_cadence,
            "hour": p.digest_hour,
            "schedule": describe_schedule(p),
            # Only for an admin and a paused member, so the usual row stays as scripts know it.
            **({"role": "admin"} if p.id in admins else {}),
            **({"paused": p.mail_paused_reason} if p.mail_paused_at is not None else {}),
        }
        for p in people
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        say(f"No members yet: tidings member add {slug} alice@example.com --name Alice")
    for r in rows:
        paused = f"  PAUSED: {r['paused']}" if "paused" in r else ""
        admin = "  (admin)" if "role" in r else ""
        typer.echo(f"{r['email']:<32} {r['name']:<20} {r['schedule']}{admin}{paused}")


@member_cli.command("import")
def member_import(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    csv_file: Annotated[
        Path,
        typer.Argument(
            help="CSV with the header row name,email,timezone,cadence,hour; '-' reads stdin.",
            allow_dash=True,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change, and change nothing.")
    ] = False,
) -> None:
    """Add members to a team from a CSV file, or update the ones already there. Every row
    is checked before anything changes: a problem anywhere lists the rows at fault (the
    header is row 1) and imports nothing. An empty cell keeps a known member's setting
    (a new one gets member add's default: UTC, daily, 9). Prints one line per row:
    add, join (known person, new to the team), change, or same.

    Example: tidings member import eng members.csv --dry-run
    """
    from app import members_csv

    try:
        text = sys.stdin.read() if str(csv_file) == "-" else csv_file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(TidingsError(f"Cannot read {csv_file}: {exc}", "Give a UTF-8 CSV file."))
    done = with_session(members_csv.import_members, slug, text, dry_run, progress_line("Importing"))
    for change in done.plan:
        typer.echo(
            f"row {change.number:<5} {change.action:<7} {change.email:<32} {change.describe()}"
        )
    if dry_run:
        say(
            f"Dry run, nothing changed: {done.summary()}. Run it again without --dry-run to import."
        )
    else:
        say(f"Imported into {slug.lower()}: {done.summary()}.")


@member_cli.command("pause")
def member_pause(
    email: Annotated[str, typer.Argument(help="The member's address.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, shown to admins and on the member's banner.")
    ] = "paused by an admin",
) -> None:
    """Stop all mail to a member (digests, check-ins, notices) without removing them: they
    can still post, and read the archive, where a banner says their mail is paused. Mail
    meant for them meanwhile is held, not sent; `tidings member resume` ends it. Tidings
    pauses a member by itself after repeated hard bounces (TIDINGS_BOUNCE_PAUSE_AFTER).

    Example: tidings member pause bob@example.org --reason "on leave until March"
    """
    person = with_session(store.pause_mail, email, reason)
    say(f"Mail to {person.email} is paused ({person.mail_paused_reason}).")
    say(f"Resume it with: tidings member resume {person.email}")


@member_cli.command("resume")
def member_resume(
    email: Annotated[str, typer.Argument(help="The member's address.")],
) -> None:
    """Mail a paused member again, and clear their bounces so far (paused by hand or after
    hard bounces: check the address works first). Mail held meanwhile is not sent in a
    heap: their next digest covers every update they missed, and held prompts and
    notices are dropped.

    Example: tidings member resume bob@example.org
    """
    done = with_session(store.resume_mail, email)
    if not done.was_paused:
        say(f"Mail to {done.person.email} was not paused; nothing to resume.")
    else:
        say(f"Mail to {done.person.email} is resumed.")
    if done.cancelled:
        say(
            f"{done.cancelled} held message(s) were dropped; the next digest covers the"
            " updates they held."
        )
    if done.cleared:
        say(f"{done.cleared} bounce(s) no longer count towards a pause.")


@member_cli.command("bounces")
def member_bounces(
    email: Annotated[str, typer.Argument(help="The member's address.")],
    as_json: JsonOpt = False,
) -> None:
    """Show the bounces recorded for a member's mail, newest first: hard or soft, the
    status code and what the receiving server said, and whether a resume cleared them.

    Example: tidings member bounces bob@example.org
    """

    def rows(session: Any) -> list[dict[str, Any]]:
        person = store.find_person(session, email)
        if person is None:
            raise TidingsError(
                f"No member with the address {email}.",
                "See the members with `tidings member list TEAM`.",
            )
        return [
            {
                "received_at": b.received_at.isoformat(timespec="seconds"),
                "hard": b.hard,
                "status": b.status,
                "diagnostic": b.diagnostic,
                "address": b.address,
                "cleared": b.cleared_at is not None,
                "message": b.inbound_id,
            }
            for b in store.bounces_of(session, person.id)  # type: ignore[arg-type]
        ]

    found = with_session(rows)
    if as_json:
        print_json(found)
        return
    if not found:
        say(f"No bounces recorded for {email}.")
    for r in found:
        kind = "hard" if r["hard"] else "soft"
        cleared = " (cleared)" if r["cleared"] else ""
        typer.echo(
            f"{r['received_at'][:19]}  {kind}{cleared:<10} {r['status'] or '-':<9}"
            f" {r['diagnostic']}"
        )


@member_cli.command("set")
def member_set(
    email: Annotated[str, typer.Argument(help="The member's address.")],
    digest: Annotated[
        str | None, typer.Option("--digest", help="daily, weekly, immediate or off.")
    ] = None,
    hour: Annotated[int | None, typer.Option("--hour", help="Local hour, 0-23.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="IANA time zone.")] = None,
    weekday: Annotated[
        str | None, typer.Option("--weekday", help="Weekly digests: mon ... sun.")
    ] = None,
    weekdays_only: Annotated[
        bool | None,
        typer.Option(
            "--weekdays-only/--every-day", help="Daily digests Monday to Friday only, or daily."
        ),
    ] = None,
    quiet: Annotated[
        str | None,
        typer.Option("--quiet", help="Quiet hours, local: 20:00-08:00 (the default), or off."),
    ] = None,
    away: Annotated[
        str | None,
        typer.Option(
            "--away",
            help="Away dates, both included: 2026-12-20..2027-01-03, 2026-12-20.. (open),"
            " or off. Nothing is sent meanwhile; the first digest back covers it all.",
        ),
    ] = None,
) -> None:
    """Change when a member hears from Tidings. Only the options given change.

    Prompts and notices never arrive in quiet hours (they wait for the end); a daily or
    weekly digest comes at the hour chosen, even inside them.

    Example: tidings member set alice@example.com --digest weekly --weekday fri --hour 16
    """
    changes = store.MemberSettings(digest, hour, tz, weekday, weekdays_only, quiet, away)
    person = with_session(store.change_member_settings, email, changes)
    say(f"{person.name} <{person.email}>: digest {describe_schedule(person)}.")


@member_cli.command("role")
def member_role(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    email: Annotated[str, typer.Argument(help="The member's address.")],
    role: Annotated[str, typer.Argument(help="admin or member.")],
) -> None:
    """Make a member a team admin, or an ordinary member again. A team's admins are told
    in their digest when a member's mail is paused (after hard bounces, or by hand), so
    someone fixes the address and resumes them.

    Example: tidings member role eng alice@example.com admin
    """
    membership = with_session(store.set_member_role, slug, email, role.strip().lower())
    what = "an admin" if membership.role == "admin" else "an ordinary member"
    say(f"{email.strip().lower()} is {what} of {slug.lower()}.")


@member_cli.command("remove")
def member_remove(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    email: Annotated[str, typer.Argument(help="The member's address (or a confirmed alias).")],
) -> None:
    """Take someone out of a team. Their posts stay in the archive; mail they send to the
    team, or to reply addresses they were given, is refused with a reason from now on.

    Example: tidings member remove eng alice@example.com
    """
    person = with_session(store.remove_member, slug, email)
    say(f"{person.name} <{person.email}> is no longer a member of {slug.lower()}.")


@link_cli.command("add")
def link_add(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    pattern: Annotated[
        str, typer.Argument(help="Text around one {id} (the number): PROJ-{id}, #{id}.")
    ],
    url: Annotated[str, typer.Argument(help="Where it links, with {id}: https://.../{id}.")],
) -> None:
    """Turn references in the team's posts into links, in the archive and in digests (not
    inside code). Adding a pattern again changes its URL.

    Example: tidings team link add eng 'PROJ-{id}' 'https://jira.example.com/browse/PROJ-{id}'
    """
    link = with_session(store.add_team_link, slug, pattern, url)
    say(f"In {slug}, {link.pattern} now links to {link.url}.")


@link_cli.command("list")
def link_list(
    slug: Annotated[str, typer.Argument(help="The team's slug.")], as_json: JsonOpt = False
) -> None:
    """Show a team's link patterns.

    Example: tidings team link list eng
    """

    def rows(session: Any) -> list[dict[str, str]]:
        team = store.get_team(session, slug)
        return [
            {"pattern": r.pattern, "url": r.url}
            for r in store.team_links(session, [team.id])[team.id]
        ]  # type: ignore[list-item,index]

    found = with_session(rows)
    if as_json:
        print_json(found)
        return
    if not found:
        say(f"No link patterns. Add one: tidings team link add {slug} 'PROJ-{{id}}' URL")
    for r in found:
        typer.echo(f"{r['pattern']:<24} {r['url']}")


@link_cli.command("remove")
def link_remove(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    pattern: Annotated[str, typer.Argument(help="The pattern, as added: PROJ-{id}.")],
) -> None:
    """Stop linking a pattern (posts render without that link from now on).

    Example: tidings team link remove eng 'PROJ-{id}'
    """
    with_session(store.remove_team_link, slug, pattern)
    say(f"In {slug}, {pattern} no longer links anywhere.")


@alias_cli.command("add")
def alias_add(
    member: Annotated[str, typer.Argument(help="The member's main address.")],
    alias: Annotated[str, typer.Argument(help="The other address they write from.")],
) -> None:
    """Let a member post from another address. A confirmation link is mailed to that
    address; mail from it counts as theirs once the link is followed. Running it again
    for an unconfirmed alias sends a new link.

    Example: tidings member alias add alice@example.com alice@home.example
    """
    from app.aliases import request_alias

    cfg = settings()
    engine = ready_engine(cfg)
    try:
        with session_scope(engine) as session:
            record = request_alias(session, member, alias, cfg, utcnow())
            confirmed = record.confirmed_at is not None
            address = record.email
    except TidingsError as exc:
        fail(exc)
    if confirmed:
        say(f"{address} is already a confirmed alias of {member}.")
        return
    say(f"Confirmation link for {address} queued; it counts once the link is followed.")
    _deliver(cfg, engine)


@alias_cli.command("list")
def alias_list(
    member: Annotated[str, typer.Argument(help="The member's main address.")],
    as_json: JsonOpt = False,
) -> None:
    """Show a member's alias addresses and whether each is confirmed.

    Example: tidings member alias list alice@example.com
    """

    def rows(session: Any) -> list[dict[str, Any]]:
        person = store.find_person(session, member)
        if person is None:
            raise TidingsError(f"No member with the address {member}.")
        return [
            {"alias": a.email, "confirmed": a.confirmed_at is not None}
            for a in store.aliases_of(session, person.id)  # type: ignore[arg-type]
        ]

    found = with_session(rows)
    if as_json:
        print_json(found)
        return
    if not found:
        say(f"No aliases. Add one: tidings member alias add {member} other@example.com")
    for r in found:
        typer.echo(f"{r['alias']:<40} {'confirmed' if r['confirmed'] else 'waiting for the link'}")


@alias_cli.command("remove")
def alias_remove(
    alias: Annotated[str, typer.Argument(help="The alias address.")],
) -> None:
    """Stop treating an address as a member's alias.

    Example: tidings member alias remove alice@home.example
    """
    record = with_session(store.remove_alias, alias)
    say(f"{record.email} is no longer an alias.")


@thread_cli.command("delete")
def thread_delete(
    thread_id: Annotated[int, typer.Argument(help="The thread's number, as in its URL.")],
) -> None:
    """Take a thread out of the archive, search and digests. Nothing is erased (the posts
    and the raw mail stay in the database); replies to it are refused with a reason.

    Example: tidings thread delete 42
    """
    thread = with_session(store.delete_thread, thread_id)
    say(f"Thread {thread.id} ({thread.title}) is deleted from the archive.")


# Outbound -------------------------------------------------------------------------------


def _deliver(cfg: Settings, engine: Engine) -> None:
    from digest.layout import DigestLayout
    from digest.outbound import outbound_transport, verp_return_path
    from digest.send import deliver_pending

    try:
        transport = outbound_transport(cfg)
    except TidingsError as exc:
        fail(exc)
    say(f"Sending through {transport.description} ...")
    report = asyncio.run(
        deliver_pending(
            engine, transport, return_path=verp_return_path(cfg), layout=DigestLayout(cfg)
        )
    )
    say(f"Sent {report.sent}, failed {report.failed}.")
    if report.failed:
        fail(
            TidingsError(
                f"{report.failed} message(s) could not be sent.",
                "They stay in the outbox and are retried by the worker.",
            )
        )


@checkin_cli.command("send")
def checkin_send(slug: Annotated[str, typer.Argument(help="The team's slug.")]) -> None:
    """Email every member of the team its check-in question now.

    Replies go to the check-in thread of each member's local date. Running it twice on one
    day asks nobody twice; `tidings team checkin` schedules it for every weekday.

    Example: tidings checkin send eng
    """
    from digest.checkin import plan_checkin

    cfg = settings()
    engine = ready_engine(cfg)
    try:
        with session_scope(engine) as session:
            team = store.get_team(session, slug)
            if team.archived_at is not None:
                raise TidingsError(
                    f"{team.slug} is archived: it asks no check-ins and takes no posts.",
                    f"Reopen it first: tidings team archive {team.slug} --undo",
                )
            paused = [p.email for p in store.paused_members(session, team.id)]  # type: ignore[arg-type]
            run = plan_checkin(session, slug, cfg, utcnow())
    except TidingsError as exc:
        fail(exc)
    say(f"Check-in for {slug}: {run.planned} to send, {run.already_sent} already asked today.")
    if paused:
        say(f"Held, not sent: mail to {', '.join(paused)} is paused (tidings member resume).")
    _deliver(cfg, engine)


@digest_cli.command("run")
def digest_run(
    now: Annotated[
        bool, typer.Option("--now", help="Send to everyone with something new, not only those due.")
    ] = False,
) -> None:
    """Plan and send digests: each member due (or everyone, with --now) gets what others
    wrote since their last digest; nothing is sent to members with nothing new, or whose
    digest is off. The worker in `tidings serve` does this on schedule by itself.

    Example: tidings digest run --now
    """
    from digest.build import run_digests

    cfg = settings()
    configure_logging("WARNING")
    engine = ready_engine(cfg)
    say("Planning digests ...")
    run = run_digests(engine, cfg, utcnow(), force=now, progress=progress_line("Planning"))
    say(
        f"Digests: {run.planned} planned, {run.nothing_new} with nothing new,"
        f" {run.skipped} not due."
    )
    _deliver(cfg, engine)


@digest_cli.command("resend")
def digest_resend(
    email: Annotated[str, typer.Argument(help="The member's address.")],
) -> None:
    """Send a member's latest digest again, with the same content (it was lost, or went
    to spam): a new message in the outbox, covering the same updates. It changes nothing
    about what their next digest brings.

    Example: tidings digest resend alice@example.com
    """
    cfg = settings()
    engine = ready_engine(cfg)
    try:
        with session_scope(engine) as session:
            row = store.resend_latest_digest(session, email, utcnow())
            what = f"{row.subject!r} to {row.recipient}"
    except TidingsError as exc:
        fail(exc)
    say(f"Queued the latest digest again: {what}.")
    _deliver(cfg, engine)


# Tokens and quarantine ------------------------------------------------------------------


@token_cli.command("create")
def token_create(
    team: Annotated[
        str | None, typer.Option("--team", help="Limit the token to one team (default: all).")
    ] = None,
    scope: Annotated[str, typer.Option("--scope", help="read or write.")] = "read",
) -> None:
    """Create an API token. It is printed once, alone on the last line of stdout.

    Example: TOKEN=$(tidings token create --team eng | tail -1)
    """
    token = with_session(store.create_api_token, team, scope)
    say(
        f"API token for {'team ' + team if team else 'all teams'} ({scope}); it is not shown again:"
    )
    typer.echo(token)


@token_cli.command("list")
def token_list(as_json: JsonOpt = False) -> None:
    """Show API tokens (never the tokens themselves): number, team, scope, and whether
    revoked.

    Example: tidings token list
    """

    def rows(session: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": token.id,
                "team": team.slug if team else None,
                "scope": token.scope,
                "created_at": token.created_at.isoformat(timespec="seconds"),
                "revoked_at": token.revoked_at.isoformat(timespec="seconds")
                if token.revoked_at
                else None,
            }
            for token, team in store.list_api_tokens(session)
        ]

    found = with_session(rows)
    if as_json:
        print_json(found)
        return
    if not found:
        say("No API tokens. Create one: tidings token create --team eng")
    for r in found:
        state = f"revoked {r['revoked_at']}" if r["revoked_at"] else "active"
        typer.echo(f"#{r['id']:<5} {r['team'] or 'all teams':<16} {r['scope']:<6} {state}")


@token_cli.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's number, from `tidings token list`.")],
) -> None:
    """Refuse an API token from now on (requests with it get 401).

    Example: tidings token revoke 3
    """
    token = with_session(store.revoke_api_token, token_id)
    say(f"API token #{token.id} is revoked.")


@quarantine_cli.command("list")
def quarantine_list(
    as_json: JsonOpt = False,
    discarded: Annotated[
        bool, typer.Option("--discarded", help="Show discarded mail instead (kept, not posted).")
    ] = False,
) -> None:
    """Show mail that was kept but not posted, with the reason (newest first). Release
    one with `tidings quarantine release ID`, or set it aside with `discard`.

    Example: tidings quarantine list --json
    """
    status = "discarded" if discarded else "quarantined"
    entries = with_session(lambda session: store.quarantined(session, status=status))
    rows = [quarantined_out(e).model_dump(mode="json") for e in entries]
    if as_json:
        print_json(rows)
        return
    if not rows:
        say("Nothing has been discarded." if discarded else "The quarantine is empty.")
    for r in rows:
        typer.echo(
            f"#{r['id']:<6} {r['received_at'][:19]}  {r['mail_from'] or '<>':<28}"
            f" {r['reason']}: {r['detail']}"
        )


@quarantine_cli.command("release")
def quarantine_release(
    entry_id: Annotated[
        int, typer.Argument(help="The message's number, from `tidings quarantine list`.")
    ],
) -> None:
    """Run a quarantined (or discarded) message through processing again, after fixing
    what kept it out: add the sender as a member, say, or undo a discard. It is posted if
    it now passes every check, or quarantined again with the new reason.

    Example: tidings quarantine release 42
    """
    from app.quarantine import release
    from smtp.ingest import process_journal_entry

    cfg = settings()
    engine = ready_engine(cfg)
    configure_logging("WARNING")
    try:
        with session_scope(engine) as session:
            outcome = release(
                session, entry_id, lambda released: process_journal_entry(engine, released, cfg)
            )
    except TidingsError as exc:
        fail(exc)
    problem = outcome.problem()
    if problem is not None:
        fail(problem)
    for line in outcome.notes(cfg.base_url):
        say(line)


@quarantine_cli.command("discard")
def quarantine_discard(
    entry_id: Annotated[
        int, typer.Argument(help="The message's number, from `tidings quarantine list`.")
    ],
) -> None:
    """Set a quarantined message aside for good: it leaves the quarantine list but is not
    deleted. The raw message, its reason and detail stay in the journal (see them with
    `tidings quarantine list --discarded`), and `release` brings it back.

    Example: tidings quarantine discard 42
    """
    entry = with_session(store.discard_quarantined, entry_id)
    say(f"Discarded #{entry.id} ({entry.reason}); it is kept, not deleted.")
    say(f"Bring it back with: tidings quarantine release {entry.id}")


@search_cli.command("reindex")
def search_reindex() -> None:
    """Rebuild the full-text search index from the stored updates (after a restore, or if
    search results look wrong). New and edited updates are indexed as they are written.

    Example: tidings search reindex
    """
    say("Rebuilding the search index ...")
    say(with_session(reindex))


@cli.command("export")
def export_team(
    slug: Annotated[str, typer.Argument(help="The team's slug.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="json (everything, for programs), mbox (mail clients) or markdown (a summary"
            " document for Notion, Confluence or Google Docs).",
        ),
    ] = "json",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only updates from then on: a span back from now (12h, 7d, 2w) or a date.",
        ),
    ] = None,
) -> None:
    """Write a team's history to stdout: threads, the reply tree, members and attachments.
    The mbox opens in any mail client (mutt -f eng.mbox, Thunderbird's ImportExportTools)
    with the same threads; the Markdown pastes into a document as headings and quotes.

    Example: tidings export eng > eng.json; tidings export eng --format markdown --since 7d
    """
    from app.export import since_when, team_json, team_markdown, team_mbox

    if fmt not in ("json", "mbox", "markdown"):
        fail(
            TidingsError(
                f"Unknown format '{fmt}'.", "Use --format json, --format mbox or --format markdown."
            )
        )
    cfg = settings()
    engine = ready_engine(cfg)
    try:
        cutoff = since_when(since) if since else None
        with session_scope(engine) as session:
            if fmt == "json":
                print_json(team_json(session, slug, cutoff))
                return
            if fmt == "markdown":
                typer.echo(team_markdown(session, slug, cfg.base_url, cutoff), nl=False)
                return
            count = 0
            for chunk in team_mbox(session, slug, cfg.mail_domain, cutoff):
                sys.stdout.buffer.write(chunk)
                count += 1
            sys.stdout.buffer.flush()
            say(f"Wrote {count} messages.")
    except TidingsError as exc:
        fail(exc)


# Reply-token keys -----------------------------------------------------------------------


def _key_rows(session: Any) -> list[dict[str, Any]]:
    return [
        {
            "version": k.version,
            "created_at": k.created_at.isoformat(timespec="seconds"),
            "status": k.status,
            "retired_at": k.retired_at.isoformat(timespec="seconds") if k.retired_at else None,
        }
        for k in store.key_versions(session)
    ]


@secret_cli.command("list")
def secret_list(as_json: JsonOpt = False) -> None:
    """Show the key versions for reply addresses: the one signing new mail, those still
    accepted from older mail, and retired ones.

    Example: tidings secret list
    """
    rows = with_session(_key_rows)
    if as_json:
        print_json(rows)
        return
    for r in rows:
        typer.echo(f"v{r['version']:<4} {r['status']:<10} created {r['created_at']}")


@secret_cli.command("rotate")
def secret_rotate() -> None:
    """Sign reply addresses in new mail with a fresh key version. Addresses in mail already
    sent keep working until you retire their version with `tidings secret retire`, so
    rotate first, wait until old mail no longer matters (a few weeks), then retire.

    Example: tidings secret rotate
    """

    def rotate(session: Any) -> tuple[int, list[int]]:
        key = store.rotate_signing_key(session)
        older = [k.version for k in store.key_versions(session) if k.status == "verifying"]
        return key.version, older

    version, older = with_session(rotate)
    say(f"New reply addresses are signed with key version {version}.")
    if older:
        listed = ", ".join(str(v) for v in older)
        say(
            f"Addresses in older mail (version {listed}) still work; when they no longer"
            f" matter, run: tidings secret retire {older[-1]}"
        )


@secret_cli.command("retire")
def secret_retire(
    version: Annotated[int, typer.Argument(help="The key version, from `tidings secret list`.")],
) -> None:
    """Stop accepting reply addresses signed with an old key version. Replies to them are
    refused with a message telling the sender to write to the team address instead.

    Example: tidings secret retire 1
    """
    with_session(store.retire_signing_key, version)
    say(f"Key version {version} is retired: reply addresses signed with it are refused.")


# Imported here, not at the top: its commands use the helpers defined above.
from app.cli.webhooks import webhook_cli  # noqa: E402

team_cli.add_typer(webhook_cli, name="webhook")


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
