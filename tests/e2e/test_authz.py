"""Who may do what, route by route: one table row per route of the app, each tried by four
visitors against a real `tidings serve` with two private teams and a public one.

The visitors, the same for every row:

- `out`: signed out, no credentials at all;
- `other`: Carol, signed in, a member of another team (ops) only; on the routes behind
  signed links she also brings a valid link of her own, for another object;
- `member`: Alice, signed in, a member of the team (eng) whose things are asked for; on
  the link routes she brings the right link, on the API the eng team's token;
- `wrong`: a real credential of the wrong kind or scope: an API token sent to a web page,
  a signed link made for another purpose (an unsubscribe link where a fix link belongs),
  a session cookie sent to the API, a team-scoped token on the all-teams quarantine, a
  read-scoped token on a route that changes something.

On the API's routes that change something, `other` brings the ops team's write token,
`member` the eng team's (or the one for every team, on what is about no one team: creating
a team, rotating keys) and `wrong` a read-scoped token, which every such route refuses
(asserted below).

A route the table lacks fails `test_the_table_covers_every_route`: a new route must get a
row, and with it a decision about who may use it.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlmodel import select

from app.db import make_engine, session_scope
from app.main import create_app
from app.models import PersonAlias
from app.settings import Settings
from app.tokens import (
    CONFIRM_ALIAS_PURPOSE,
    FEED_PURPOSE,
    FIX_LINK_PURPOSE,
    UNSUBSCRIBE_PURPOSE,
    approve_held_purpose,
    reply_address_for,
    sign_link,
)
from tests.conftest import free_port
from tests.e2e.stack import (
    DOMAIN,
    Stack,
    mail,
    make_stack,
    quarantined,
    thread_titled,
    updates_of,
    wait_for,
)

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
VISITORS = ("out", "other", "member", "wrong")
SECRET_PLAN = "The zeppelin budget is approved."


# What a visitor should get ----------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    status: int
    location: str | None = None  # exact Location; "{signin}" is this path's sign-in page
    shows: tuple[str, ...] = ()
    hides: tuple[str, ...] = ()
    body: str | None = None  # the whole body, exactly


def ok(*shows: str, hides: tuple[str, ...] = ()) -> Expect:
    return Expect(200, shows=shows, hides=hides)


def to(location: str) -> Expect:
    return Expect(303, location=location)


SIGN_IN_FIRST = to("{signin}")  # a private page, signed out: sign in, then back here
NOT_FOUND = Expect(404)  # the same answer as for something that does not exist
BAD_LINK = Expect(403, shows=("This link does not work any more",))
UNAUTHORISED = Expect(401)
FORBIDDEN = Expect(403)


@dataclass(frozen=True)
class Row:
    """One route (`route` as the app declares it) tried at `path` by every visitor.

    `path` and `form` take `{names}` of the World's ids, plus `{t}` and `{p}`: the link
    token and person id each visitor brings (`t`/`p` name World attributes per visitor;
    missing means none). `auth` replaces a visitor's usual credentials (World attribute
    names, or "" for none)."""

    method: str
    route: str
    path: str
    out: Expect
    other: Expect
    member: Expect
    wrong: Expect
    form: dict[str, str] | None = None
    json: dict[str, str] | None = None  # a JSON body, sent as it is
    t: dict[str, str] = field(default_factory=dict)
    p: dict[str, str] = field(default_factory=dict)
    auth: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def same(expect: Expect) -> dict[str, Expect]:
    return dict.fromkeys(VISITORS, expect)


def private(shown: Expect) -> dict[str, Expect]:
    """A private team's page: members see it, members of other teams get 404, and anyone
    without a session (an API token is no session) is sent to sign in first."""
    return {"out": SIGN_IN_FIRST, "other": NOT_FOUND, "member": shown, "wrong": SIGN_IN_FIRST}


def api(shown: Expect, other: Expect = NOT_FOUND) -> dict[str, Expect]:
    return {"out": UNAUTHORISED, "other": other, "member": shown, "wrong": UNAUTHORISED}


def api_write(shown: Expect, other: Expect = NOT_FOUND) -> dict[str, Expect]:
    """An API route that changes something: only a write token that may see the thing; a
    read token, even of the right team, is refused."""
    return {"out": UNAUTHORISED, "other": other, "member": shown, "wrong": FORBIDDEN}


# The tokens each visitor brings to those routes (see the module's docstring).
WRITE = {"other": "ops_write_token", "member": "eng_write_token", "wrong": "eng_token"}
WRITE_ALL = {
    "other": "ops_write_token",
    "member": "all_teams_write_token",
    "wrong": "all_teams_token",
}
READ_TOKENS = ("eng_token", "all_teams_token")
DORA = "dora@example.com"


def linked(shown: Expect, other: Expect = BAD_LINK) -> dict[str, Expect]:
    """A page behind a signed link: only the right link opens it; no cookie helps."""
    return {"out": BAD_LINK, "other": other, "member": shown, "wrong": BAD_LINK}


# Links each visitor brings to the link routes: none signed out; Carol, her own valid link
# for another object; Alice, the right one; `wrong`, a genuine link for another purpose.
FIX_LINKS = {"other": "fix_ops", "member": "fix_eng", "wrong": "unsubscribe_as_fix"}
UNSUBSCRIBE_LINKS = {"member": "unsubscribe_alice", "wrong": "fix_as_unsubscribe"}
HELD_LINKS = {"other": "approve_alice", "member": "approve_alice", "wrong": "fix_as_approval"}
HELD_PEOPLE = {"out": "alice_id", "other": "carol_id", "member": "alice_id", "wrong": "alice_id"}
ALIAS_LINKS = {"other": "confirm_other_alias", "member": "confirm_alias", "wrong": "fix_as_alias"}
SIGN_IN_LINKS = {
    "out": "bogus_token",
    "other": "bogus_token",
    "member": "sign_in_token",
    "wrong": "fix_eng",
}
FEED_LINKS = {"other": "feed_carol", "member": "feed_alice", "wrong": "fix_as_feed"}
PUBLIC = same(ok())

TABLE: list[Row] = [
    # One's own settings: any signed-in person, about themselves only. First: a later
    # row's unsubscribe link turns Alice's digests off, which the last test checks.
    Row(
        "GET",
        "/settings",
        "/settings",
        out=SIGN_IN_FIRST,
        other=ok("Your settings", "Carol"),
        member=ok("Your settings", "Alice"),
        wrong=SIGN_IN_FIRST,
    ),
    Row(
        "POST",
        "/settings",
        "/settings",
        out=SIGN_IN_FIRST,
        other=ok("Saved."),
        member=ok("Saved."),
        wrong=SIGN_IN_FIRST,
        form={"cadence": "daily", "hour": "9", "timezone": "UTC"},
    ),
    # The archive ---------------------------------------------------------------------
    Row(
        "GET",
        "/",
        "/",
        out=ok("Newsroom", hides=("Engineering", "Operations")),
        other=ok("Operations", "Newsroom", hides=("Engineering",)),
        member=ok("Engineering", "Newsroom", hides=("Operations",)),
        wrong=ok("Newsroom", hides=("Engineering", "Operations")),
    ),
    Row("GET", "/teams/{slug}", "/teams/eng", **private(ok("Eng secret plan"))),
    Row("GET", "/teams/{slug}", "/teams/news", **same(ok("Public news"))),
    Row("GET", "/threads/{thread_id}", "/threads/{eng_thread}", **private(ok(SECRET_PLAN))),
    Row("GET", "/threads/{thread_id}", "/threads/{news_thread}", **same(ok("narwhal"))),
    Row(
        "GET",
        "/updates/{update_id}",
        "/updates/{eng_update}",
        **private(to("/threads/{eng_thread}#u{eng_update}")),
    ),
    Row("GET", "/members/{person_id}", "/members/{bob_id}", **private(ok("Bob eng note"))),
    Row(
        "GET",
        "/search",
        "/search?q=zeppelin",
        out=ok(hides=("Eng secret plan",)),
        other=ok(hides=("Eng secret plan",)),
        member=ok("Eng secret plan"),
        wrong=ok(hides=("Eng secret plan",)),
    ),
    Row(
        "GET",
        "/attachments/{attachment_id}",
        "/attachments/{eng_attachment}",
        **private(ok("zeppelin figures")),
    ),
    Row("GET", "/style.css", "/style.css", **PUBLIC),
    Row(
        "GET",
        "/teams/{slug}/feed.atom",
        "/teams/eng/feed.atom?t={t}",
        out=NOT_FOUND,  # feed readers cannot sign in: no redirect, only the token counts
        other=NOT_FOUND,
        member=ok("Eng secret plan"),
        wrong=NOT_FOUND,
        t=FEED_LINKS,
        auth={"member": ""},  # the feed link alone, as a feed reader has it
    ),
    Row("GET", "/teams/{slug}/feed.atom", "/teams/news/feed.atom", **same(ok("Public news"))),
    # The API ---------------------------------------------------------------------------
    # `other` holds the ops team's token, `member` the eng team's, `wrong` brings
    # Alice's session cookie (as cookie and as bearer): a session is no API token.
    Row(
        "GET",
        "/api/teams",
        "/api/teams",
        **api(ok('"slug":"eng"', hides=('"ops"',)), other=ok('"slug":"ops"', hides=('"eng"',))),
    ),
    Row("GET", "/api/teams/{slug}/members", "/api/teams/eng/members", **api(ok(ALICE))),
    Row("GET", "/api/teams/{slug}/threads", "/api/teams/eng/threads", **api(ok("Eng secret plan"))),
    Row("GET", "/api/threads/{thread_id}", "/api/threads/{eng_thread}", **api(ok(SECRET_PLAN))),
    Row(
        "GET",
        "/api/search",
        "/api/search?q=zeppelin",
        **api(ok("Eng secret plan"), other=Expect(200, body="[]")),  # nothing it may see
    ),
    Row("GET", "/api/search", "/api/search?q=zeppelin&team=eng", **api(ok("Eng secret plan"))),
    Row(
        "GET",
        "/api/quarantine",
        "/api/quarantine",
        # All teams' held mail: only a token made without --team; a team's is the wrong
        # scope. (Bob's held reply is listed: the row approving it comes later.)
        **api(ok("unverified-sender"), other=FORBIDDEN) | {"wrong": FORBIDDEN},
        auth={"member": "all_teams_token", "wrong": "eng_token"},
    ),
    Row("GET", "/api/teams/{slug}", "/api/teams/eng", **api(ok('"former_slugs":[]'))),
    Row(
        "GET",
        "/api/teams/{slug}/quarantine",
        "/api/teams/eng/quarantine",
        **api(ok("unverified-sender")),  # Bob's reply to Alice's address: eng's alone
    ),
    # The API's changes: each done once, by `member`; the others change nothing.
    Row(
        "POST",
        "/api/teams",
        "/api/teams",
        **api_write(Expect(201, shows=('"slug":"labs"',)), other=FORBIDDEN),
        json={"slug": "labs", "name": "Labs"},
        auth=WRITE_ALL,
    ),
    Row(
        "PATCH",
        "/api/teams/{slug}",
        "/api/teams/eng",
        **api_write(ok('"name":"Engineering"')),
        json={"name": "Engineering"},
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/archive",
        "/api/teams/eng/archive",
        **api_write(ok('"archived_at":"')),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/reopen",
        "/api/teams/eng/reopen",
        **api_write(ok('"archived_at":null')),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/members",
        "/api/teams/eng/members",
        **api_write(Expect(201, shows=(DORA,))),
        json={"email": DORA, "name": "Dora"},
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/members/import",
        "/api/teams/eng/members/import?dry_run=true",
        **api_write(ok('"action":"add"', "erin@example.com")),
        json={"csv": "name,email,timezone,cadence,hour\nErin,erin@example.com,,,\n"},
        auth=WRITE,
    ),
    Row(
        "PATCH",
        "/api/teams/{slug}/members/{email}",
        f"/api/teams/eng/members/{DORA}",
        **api_write(ok("Europe/Oslo")),
        json={"timezone": "Europe/Oslo"},
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/members/{email}/pause",
        f"/api/teams/eng/members/{DORA}/pause",
        **api_write(ok("paused by an admin")),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/members/{email}/resume",
        f"/api/teams/eng/members/{DORA}/resume",
        **api_write(ok('"was_paused":true')),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/teams/{slug}/members/{email}/digest/resend",
        f"/api/teams/eng/members/{DORA}/digest/resend",
        # Let through, and told why there is nothing to resend.
        **api_write(Expect(404, shows=("has not had a digest yet",))),
        auth=WRITE,
    ),
    Row(
        "DELETE",
        "/api/teams/{slug}/members/{email}",
        f"/api/teams/eng/members/{DORA}",
        **api_write(ok("no longer a member of eng")),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/quarantine/{entry_id}/release",
        "/api/quarantine/{auto_reply_entry}/release",
        **api_write(ok('"status":"quarantined"', "auto-reply")),  # kept out again
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/quarantine/{entry_id}/discard",
        "/api/quarantine/{auto_reply_entry}/discard",
        **api_write(ok('"reason":"auto-reply"')),
        auth=WRITE,
    ),
    Row(
        "POST",
        "/api/secrets/rotate",
        "/api/secrets/rotate",
        **api_write(ok('"signing_version":2'), other=FORBIDDEN),
        auth=WRITE_ALL,
    ),
    # Behind signed links in our mail -------------------------------------------------
    Row(
        "GET",
        "/updates/{update_id}/fix",
        "/updates/{eng_update}/fix?t={t}",
        **linked(ok("Fix your post", SECRET_PLAN)),
        t=FIX_LINKS,
    ),
    Row(
        "POST",
        "/updates/{update_id}/fix",
        "/updates/{eng_update}/fix",
        **linked(to("/threads/{eng_thread}#u{eng_update}")),
        form={"t": "{t}", "body": SECRET_PLAN},
        t=FIX_LINKS,
    ),
    Row(
        "GET",
        "/unsubscribe",
        "/unsubscribe?t={t}",
        **linked(ok("Stop my digests", ALICE)),
        t=UNSUBSCRIBE_LINKS,
    ),
    Row(
        "POST",
        "/unsubscribe",
        "/unsubscribe",
        **linked(ok("Digests stopped", ALICE)),
        form={"t": "{t}"},
        t=UNSUBSCRIBE_LINKS,
    ),
    Row(
        "GET",
        "/held/{entry_id}",
        "/held/{held_entry}?p={p}&t={t}",
        **linked(ok("Post this reply under your name?")),
        t=HELD_LINKS,
        p=HELD_PEOPLE,
    ),
    Row(
        "POST",
        "/held/{entry_id}/{decision}",
        "/held/{held_entry}/approve",
        **linked(ok("Approved")),
        form={"p": "{p}", "t": "{t}"},
        t=HELD_LINKS,
        p=HELD_PEOPLE,
    ),
    Row(
        "GET",
        "/aliases/{alias_id}/confirm",
        "/aliases/{alias_id}/confirm?t={t}",
        **linked(ok("Confirm alice@home.example?")),
        t=ALIAS_LINKS,
    ),
    Row(
        "POST",
        "/aliases/{alias_id}/confirm",
        "/aliases/{alias_id}/confirm",
        **linked(ok("Address confirmed")),
        form={"t": "{t}"},
        t=ALIAS_LINKS,
    ),
    # Signing in and out --------------------------------------------------------------
    Row("GET", "/signin", "/signin", **same(ok("Email me a sign-in link"))),
    Row(
        "POST",
        "/signin",
        "/signin",
        **same(ok("Check your email")),  # the same answer for anyone, known or not
        form={"email": "nobody@example.com"},
    ),
    Row(
        "GET", "/signin/{token}", "/signin/{t}", **linked(ok("Sign in to Tidings")), t=SIGN_IN_LINKS
    ),
    Row("POST", "/signin/{token}", "/signin/{t}", **linked(to("/")), t=SIGN_IN_LINKS),
    Row(
        "POST",
        "/signout",
        "/signout",
        **same(to("/")),
        # Sessions of their own: signing out must not end the ones the other rows use.
        auth={"other": "spare_carol_cookie", "member": "spare_alice_cookie"},
    ),
    # Health and the API's documentation: public, and about no one's data --------------
    Row("GET", "/healthz", "/healthz", **PUBLIC),
    Row("GET", "/readyz", "/readyz", **PUBLIC),
    # Counts and timings only: no names, addresses, titles or text (see app/metrics.py).
    Row("GET", "/metrics", "/metrics", **same(ok("tidings_messages_received_total"))),
    Row("GET", "/openapi.json", "/openapi.json", **same(ok("/api/teams"))),
    Row("GET", "/docs", "/docs", **PUBLIC),
    Row("GET", "/docs/oauth2-redirect", "/docs/oauth2-redirect", **PUBLIC),
    Row("GET", "/redoc", "/redoc", **PUBLIC),
]


# The running archive --------------------------------------------------------------------


@dataclass
class World:
    """The stack and everything the rows refer to: ids, sessions, tokens and links."""

    stack: Stack
    values: dict[str, str] = field(default_factory=dict)
    tried: set[str] = field(default_factory=set)  # rows that ran, for the final check

    def __getitem__(self, name: str) -> str:
        return self.values[name] if name else ""

    def credentials(self, row: Row, who: str) -> tuple[str, str]:
        """(session cookie, bearer token) the visitor brings to this row."""
        web = not row.route.startswith("/api")
        usual = {
            "out": ("", ""),
            "other": ("carol_cookie", "") if web else ("", "ops_token"),
            "member": ("alice_cookie", "") if web else ("", "eng_token"),
            "wrong": ("", "eng_token") if web else ("alice_cookie", "alice_cookie"),
        }[who]
        if who in row.auth:
            name = row.auth[who]
            usual = (name, "") if name.endswith("cookie") or not name else ("", name)
        return self[usual[0]], self[usual[1]]

    def attempt(self, row: Row, who: str) -> tuple[str, httpx.Response]:
        fill = {**self.values, "t": self[row.t.get(who, "")], "p": self[row.p.get(who, "")]}
        path = row.path.format(**fill)
        cookie, bearer = self.credentials(row, who)
        with httpx.Client(
            base_url=self.stack.base_url,
            cookies={"tidings_session": cookie} if cookie else None,
            headers={"Authorization": f"Bearer {bearer}"} if bearer else None,
            timeout=10,
        ) as client:
            form = {k: v.format(**fill) for k, v in row.form.items()} if row.form else None
            return path, client.request(row.method, path, data=form, json=row.json)


def sign_in_token(stack: Stack, address: str) -> str:
    """The token of a new sign-in link for `address`, read from the mail it came in."""

    def links() -> list[str]:
        found = []
        for message in stack.outbox():
            to_them = message["To"].addresses[0].addr_spec == address
            if to_them and "sign-in link" in str(message["Subject"]):
                text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                found += re.findall(r"/signin/(\S+)", text)
        return found

    before = len(links())
    answer = httpx.post(f"{stack.base_url}/signin", data={"email": address}, timeout=10)
    assert answer.status_code == 200, answer.text
    return wait_for(lambda: links()[-1] if len(links()) > before else None, what="the link")


def session_for(stack: Stack, address: str) -> str:
    """A session cookie, got the way a person gets one: the emailed link, then its button."""
    done = httpx.post(f"{stack.base_url}/signin/{sign_in_token(stack, address)}", timeout=10)
    assert done.status_code == 303, done.text
    return done.cookies["tidings_session"]


def post(stack: Stack, sender: str, team: str, subject: str, body: str, file: bytes = b"") -> int:
    msg = mail(sender, f"{team}@{DOMAIN}", subject, body)
    if file:
        msg.add_attachment(file, maintype="text", subtype="plain", filename="figures.txt")
    stack.send(msg, sender, f"{team}@{DOMAIN}")
    return int(wait_for(lambda: thread_titled(stack, subject, team), what=subject)["id"])


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("team", "create", "ops", "--name", "Operations")
        stack.cli("team", "create", "news", "--name", "Newsroom", "--public")
        for team, address, name in [
            ("eng", ALICE, "Alice"),
            ("eng", BOB, "Bob"),
            ("news", ALICE, "Alice"),
            ("ops", CAROL, "Carol"),
        ]:
            stack.cli("member", "add", team, address, "--name", name)
        stack.cli("member", "alias", "add", ALICE, "alice@home.example")
        tokens = {
            name: stack.cli("token", "create", *args).stdout.strip().splitlines()[-1]
            for name, args in [
                ("all_teams_token", ()),
                ("eng_token", ("--team", "eng")),
                ("ops_token", ("--team", "ops")),
                ("all_teams_write_token", ("--scope", "write")),
                ("eng_write_token", ("--team", "eng", "--scope", "write")),
                ("ops_write_token", ("--team", "ops", "--scope", "write")),
            ]
        }
        stack.token = tokens["all_teams_token"]
        yield World(stack, build_world(stack, tokens))
    finally:
        stack.stop()


def build_world(stack: Stack, tokens: dict[str, str]) -> dict[str, str]:
    eng_thread = post(stack, ALICE, "eng", "Eng secret plan", SECRET_PLAN, b"zeppelin figures")
    ops_thread = post(stack, CAROL, "ops", "Ops incident", "The walrus cluster is down.")
    news_thread = post(stack, ALICE, "news", "Public news", "The narwhal launch is public.")
    post(stack, BOB, "eng", "Bob eng note", "Bob was here.")
    [eng_update] = updates_of(stack, eng_thread)
    [ops_update] = updates_of(stack, ops_thread)
    alice_id, carol_id = eng_update["author"]["id"], ops_update["author"]["id"]
    bob_id = updates_of(stack, thread_titled(stack, "Bob eng note")["id"])[0]["author"]["id"]  # type: ignore[index]

    # Bob answers with Alice's reply address: held, for Alice to approve.
    alices_address = reply_address_for(alice_id, eng_thread, "eng", DOMAIN, stack.reply_keys())
    stack.send(mail(BOB, alices_address, "Re: Eng secret plan", "Me too?"), BOB, alices_address)
    held = wait_for(
        lambda: [e["id"] for e in quarantined(stack) if e["reason"] == "unverified-sender"],
        what="the held reply",
    )[0]
    # Alice's out-of-office reply to eng: kept, for the release and discard rows.
    away = mail(
        ALICE,
        f"eng@{DOMAIN}",
        "Out of office",
        "I am out of the office.",
        Auto_Submitted="auto-replied",
    )
    stack.send(away, ALICE, f"eng@{DOMAIN}")
    auto_reply = wait_for(
        lambda: [e["id"] for e in quarantined(stack) if e["reason"] == "auto-reply"],
        what="the auto-reply",
    )[0]
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:
            alias = session.exec(select(PersonAlias)).one().id
    finally:
        engine.dispose()
    assert alias is not None

    secret = stack.secret()
    soon = datetime.now(UTC) + timedelta(days=7)

    def link(purpose: str, subject: int) -> str:
        return sign_link(purpose, subject, soon, secret)

    return {
        **tokens,
        "eng_thread": str(eng_thread),
        "news_thread": str(news_thread),
        "eng_update": str(eng_update["id"]),
        "eng_attachment": str(eng_update["attachments"][0]["id"]),
        "alice_id": str(alice_id),
        "carol_id": str(carol_id),
        "bob_id": str(bob_id),
        "held_entry": str(held),
        "auto_reply_entry": str(auto_reply),
        "alias_id": str(alias),
        "alice_cookie": session_for(stack, ALICE),
        "carol_cookie": session_for(stack, CAROL),
        "spare_alice_cookie": session_for(stack, ALICE),
        "spare_carol_cookie": session_for(stack, CAROL),
        "sign_in_token": sign_in_token(stack, ALICE),
        "bogus_token": "AAAA" + "x" * 39,
        "fix_eng": link(FIX_LINK_PURPOSE, eng_update["id"]),
        "fix_ops": link(FIX_LINK_PURPOSE, ops_update["id"]),
        "unsubscribe_alice": link(UNSUBSCRIBE_PURPOSE, alice_id),
        "approve_alice": link(approve_held_purpose(alice_id), held),
        "confirm_alias": link(CONFIRM_ALIAS_PURPOSE, alias),
        "confirm_other_alias": link(CONFIRM_ALIAS_PURPOSE, alias + 1),
        "feed_alice": link(FEED_PURPOSE, alice_id),
        "feed_carol": link(FEED_PURPOSE, carol_id),
        # Genuine links, each made for another purpose than the route it is taken to.
        "unsubscribe_as_fix": link(UNSUBSCRIBE_PURPOSE, eng_update["id"]),
        "fix_as_unsubscribe": link(FIX_LINK_PURPOSE, alice_id),
        "fix_as_approval": link(FIX_LINK_PURPOSE, held),
        "fix_as_alias": link(FIX_LINK_PURPOSE, alias),
        "fix_as_feed": link(FIX_LINK_PURPOSE, alice_id),
    }


# The tests ------------------------------------------------------------------------------


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves; HEAD comes with GET."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    app = create_app(settings)
    return {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_the_table_covers_every_route(tmp_path: Path) -> None:
    served = app_routes(tmp_path)
    tabled = {(row.method, row.route) for row in TABLE}
    assert served - tabled == set(), "routes without a row in TABLE: who may use them?"
    assert tabled - served == set(), "rows for routes the app no longer has"
    # Every API route that changes something is tried with a read-scoped token, and refuses.
    for row in TABLE:
        if row.route.startswith("/api") and row.method != "GET":
            assert row.auth.get("wrong") in READ_TOKENS and row.wrong == FORBIDDEN, row.id


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.id)
def test_route_answers_each_visitor_as_it_should(world: World, row: Row) -> None:
    wrong = []
    for who in VISITORS:
        expect: Expect = getattr(row, who)
        path, response = world.attempt(row, who)
        location = (expect.location or "").format(
            signin=f"/signin?next={quote(path, safe='/')}", **world.values
        )
        text = response.text
        found = []
        if response.status_code != expect.status:
            found.append(f"status {response.status_code}, not {expect.status}")
        if expect.location is not None and response.headers.get("location") != location:
            found.append(f"sent to {response.headers.get('location')}, not {location}")
        found += [f"does not show {s!r}" for s in expect.shows if s not in text]
        found += [f"shows {s!r}" for s in expect.hides if s in text]
        if expect.body is not None and text != expect.body:
            found.append(f"answered {text[:80]!r}, not {expect.body!r}")
        if expect.status == 401 and "Bearer" not in response.headers.get("www-authenticate", ""):
            found.append("401 without WWW-Authenticate: Bearer")
        if found:
            wrong.append(f"{who}: {row.method} {path}: {'; '.join(found)}")
    world.tried.add(row.id)
    assert not wrong, "\n".join(wrong)


def test_the_member_rows_did_what_a_member_asked(world: World) -> None:
    """After the table: the right links acted (and nothing else did)."""
    if len(world.tried) < len(TABLE):
        pytest.skip("checks what the whole table did: run it all (-k selected only some)")
    stack = world.stack
    assert stack.cli("member", "alias", "list", ALICE).stdout.split()[-1] == "confirmed"
    members = {m["email"]: m for m in stack.api("/teams/eng/members").json()}
    assert members[ALICE]["digest_cadence"] == "off"  # Alice's own unsubscribe link
    assert members[BOB]["digest_cadence"] == "daily"
    assert not [e for e in quarantined(stack) if e["reason"] == "unverified-sender"]
    # The spare sessions were signed out; the ones the rows used still work.
    for cookie, works in [
        ("spare_alice_cookie", False),
        ("alice_cookie", True),
        ("carol_cookie", True),
    ]:
        page = httpx.get(
            f"{stack.base_url}/",
            cookies={"tidings_session": world[cookie]},
            timeout=10,
        )
        assert ("Sign out" in page.text) == works, cookie
