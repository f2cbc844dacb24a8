"""The API's write half against a running `tidings serve`, with a real HTTP client: what an
admin does (teams, members, CSV import, pause and resume, the quarantine, digest resend,
key rotation), each checked by what a user then sees (the API's lists, the CLI, mail
refused or posted, digests in the Maildir). And who may: a read token changes nothing, a
team's token acts on its team only, and what is about no one team needs a token for all.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.stack import (
    Stack,
    digests_for,
    far_hour,
    mail,
    make_stack,
    quarantined,
    reply_address_of,
    updates_of,
    wait_for,
)
from tests.e2e.test_admin import address, confirm_alias, outbox_to, post

ALICE, BOB, CAROL = "alice@example.com", "bob@example.org", "carol@example.net"
DAN, ERIN = "dan@example.org", "erin@example.com"
READ_ONLY = "This API token may only read"
FOR_EVERY_TEAM = "Use a write token for every team"


@dataclass(frozen=True)
class Api:
    """A client of the stack's API holding one token."""

    stack: Stack
    token: str

    def __call__(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}  # type: ignore[dict-item]
        return httpx.request(
            method, f"{self.stack.base_url}/api{path}", headers=headers, timeout=60, **kw
        )  # type: ignore[arg-type]


@dataclass(frozen=True)
class Tokens:
    admin: Api  # write, every team
    eng: Api  # write, eng only
    eng_read: Api  # read, eng only
    ops: Api  # write, ops only


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("team", "create", "ops", "--name", "Operations")
        for team, who, name in [("eng", ALICE, "Alice"), ("eng", BOB, "Bob"), ("ops", CAROL, "")]:
            stack.cli("member", "add", team, who, "--name", name, "--hour", far_hour("UTC"))
        stack.token = new_token(stack)  # all teams, read: what `stack.api` reads with
        yield stack
    finally:
        stack.stop()


def new_token(stack: Stack, *args: str) -> str:
    return stack.cli("token", "create", *args).stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def api(stack: Stack) -> Tokens:
    return Tokens(
        admin=Api(stack, new_token(stack, "--scope", "write")),
        eng=Api(stack, new_token(stack, "--team", "eng", "--scope", "write")),
        eng_read=Api(stack, new_token(stack, "--team", "eng")),
        ops=Api(stack, new_token(stack, "--team", "ops", "--scope", "write")),
    )


def changes(stack: Stack) -> list[tuple[str, str]]:
    """(method, path template) of every API route that changes something, from the
    running app's own schema: a new one is tried by the scope tests without a word here."""
    schema = httpx.get(f"{stack.base_url}/openapi.json", timeout=10).json()
    return [
        (method.upper(), path.removeprefix("/api"))
        for path, operations in schema["paths"].items()
        if path.startswith("/api/")
        for method in operations
        if method != "get"
    ]


def members(stack: Stack, slug: str) -> dict[str, dict]:
    return {m["email"]: m for m in stack.api(f"/teams/{slug}/members").json()}


def cli_members(stack: Stack, slug: str) -> dict[str, dict]:
    return {m["email"]: m for m in json.loads(stack.cli("member", "list", slug, "--json").stdout)}


def key_versions(stack: Stack) -> list[tuple[int, str]]:
    rows = json.loads(stack.cli("secret", "list", "--json").stdout)
    return [(r["version"], r["status"]) for r in rows]


def checkin_reply_address(stack: Stack, who: str, team: str) -> str:
    """The reply address of the newest check-in prompt `who` got from `team`."""
    prompts = wait_for(
        lambda: [m for m in outbox_to(stack, who) if f"{team}+" in str(m["Reply-To"])],
        what=f"{who}'s check-in prompt from {team}",
    )
    return reply_address_of(prompts[-1])


def refusal(stack: Stack, sender: str, to: str) -> tuple[int, str]:
    """The code and text a message from `sender` to `to` is refused with, at RCPT or at
    DATA (fails if it is taken)."""
    try:
        stack.send(mail(sender, to, "Anyone there?", "Hello."), sender, to)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients[to]
        return code, text.decode()
    except smtplib.SMTPDataError as exc:
        return exc.smtp_code, exc.smtp_error.decode()
    raise AssertionError(f"{to} took mail from {sender}")


def detail(response: httpx.Response) -> str:
    return str(response.json()["detail"])


# Who may --------------------------------------------------------------------------------------


def test_a_read_token_changes_nothing_and_says_how_to_get_a_write_token(
    stack: Stack, api: Tokens
) -> None:
    routes = changes(stack)
    assert len(routes) >= 14
    before = (members(stack, "eng"), stack.api("/teams").json(), key_versions(stack))
    for method, path in routes:
        url = path.format(slug="eng", email=ALICE, entry_id=1)
        answer = api.eng_read(method, url, json={})
        assert answer.status_code == 403, (method, path, answer.text)
        assert READ_ONLY in detail(answer)
        assert "`tidings token create --team eng --scope write`" in detail(answer)
    assert (members(stack, "eng"), stack.api("/teams").json(), key_versions(stack)) == before


def test_a_team_token_acts_on_its_own_team_and_never_sees_another(
    stack: Stack, api: Tokens
) -> None:
    for method, path in changes(stack):
        if "{slug}" not in path:
            continue
        theirs = api.ops(method, path.format(slug="eng", email=ALICE), json={})
        nobodys = api.ops(method, path.format(slug="nope", email=ALICE), json={})
        # Exactly what a team that does not exist gets: nothing says that eng is there.
        assert theirs.status_code == nobodys.status_code == 404, (method, path, theirs.text)
        assert detail(theirs) == detail(nobodys).replace("nope", "eng") == "No team 'eng'."
    assert ALICE in members(stack, "eng")

    for method, path in [("POST", "/teams"), ("POST", "/secrets/rotate")]:
        answer = api.eng(method, path, json={"slug": "skunkworks"})
        assert answer.status_code == 403 and FOR_EVERY_TEAM in detail(answer), answer.text
    assert "skunkworks" not in [t["slug"] for t in stack.api("/teams").json()]
    assert key_versions(stack) == [(1, "signing")]

    # Its own team it may change: the name, and back.
    renamed = api.eng("PATCH", "/teams/eng", json={"name": "Eng"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Eng"
    assert api.eng("PATCH", "/teams/eng", json={"name": "Engineering"}).status_code == 200
    assert [t["name"] for t in stack.api("/teams").json() if t["slug"] == "eng"] == ["Engineering"]
    assert api.ops("GET", "/teams/eng").status_code == 404
    assert api.ops("GET", "/teams/eng/quarantine").status_code == 404


# Teams ----------------------------------------------------------------------------------------


def test_create_rename_schedule_and_archive_a_team(stack: Stack, api: Tokens) -> None:
    created = api.admin("POST", "/teams", json={"slug": "labs", "name": "Labs"})
    assert created.status_code == 201, created.text
    assert created.json() | {"archived_at": None} == {
        "slug": "labs",
        "name": "Labs",
        "address": address("labs"),
        "checkin_question": "What did you get done today?",
        "public": False,
        "archived_at": None,
        "former_slugs": [],
        "checkin_questions": ["What did you get done today?"],
        "checkin_hour": None,
        "blocker_question": None,
    }
    again = api.admin("POST", "/teams", json={"slug": "labs"})
    assert again.status_code == 409 and "Team 'labs' already exists" in detail(again)
    for slug in ("Not a slug!", "digest"):
        bad = api.admin("POST", "/teams", json={"slug": slug})
        assert bad.status_code == 422 and "cannot be a team slug" in detail(bad), bad.text
    joined = api.admin("POST", "/teams/labs/members", json={"email": ALICE, "name": "Alice"})
    assert joined.status_code == 201, joined.text
    post(stack, ALICE, address("labs"), "Lab notes", "The centrifuge works.", "labs")

    renamed = api.admin("PATCH", "/teams/labs", json={"slug": "lab", "name": "The Lab"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["slug"] == "lab" and renamed.json()["former_slugs"] == ["labs"]
    assert renamed.json()["address"] == address("lab")
    assert api.admin("GET", "/teams/labs").json()["slug"] == "lab"  # the old slug still works
    post(stack, ALICE, address("labs"), "To the old address", "Still arrives.", "lab")
    taken = api.admin("PATCH", "/teams/eng", json={"slug": "labs"})
    assert taken.status_code == 409 and "was the slug of team lab" in detail(taken)

    scheduled = api.admin(
        "PATCH",
        "/teams/lab",
        json={
            "checkin_hour": 16,
            "checkin_questions": ["What did you finish?", "What is next?", "Anything blocking?"],
            "blocker_question": 3,
        },
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["checkin_hour"] == 16 and scheduled.json()["blocker_question"] == 3
    stack.cli("checkin", "send", "lab")
    prompt = wait_for(
        lambda: [m for m in outbox_to(stack, ALICE) if "lab+" in str(m["Reply-To"])],
        what="the lab's check-in prompt",
    )[-1]
    text = prompt.get_body(("plain",)).get_content()
    assert "What did you finish?" in text and "Anything blocking?" in text

    no_such = api.admin("PATCH", "/teams/lab", json={"blocker_question": 5})
    assert no_such.status_code == 422 and "There is no question 5" in detail(no_such)
    off = api.admin("PATCH", "/teams/lab", json={"checkin_hour": None})
    assert off.json()["checkin_hour"] is None and len(off.json()["checkin_questions"]) == 3
    nothing = api.admin("PATCH", "/teams/lab", json={})
    assert nothing.status_code == 422 and "Nothing to change" in detail(nothing)
    assert api.admin("PATCH", "/teams/lab", json={"nmae": "Typo"}).status_code == 422

    archived = api.admin("POST", "/teams/lab/archive")
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    code, said = refusal(stack, ALICE, address("lab"))
    assert code == 550 and "archived" in said
    reopened = api.admin("POST", "/teams/lab/reopen")
    assert reopened.status_code == 200 and reopened.json()["archived_at"] is None
    post(stack, ALICE, address("lab"), "Open again", "Back to work.", "lab")


# Members --------------------------------------------------------------------------------------


def test_add_change_pause_resume_and_remove_a_member(stack: Stack, api: Tokens) -> None:
    added = api.eng(
        "POST",
        "/teams/eng/members",
        json={"email": DAN, "name": "Dan", "timezone": "America/New_York"},
    )
    assert added.status_code == 201, added.text
    assert added.json()["role"] == "member" and added.json()["timezone"] == "America/New_York"
    again = api.eng("POST", "/teams/eng/members", json={"email": DAN, "name": "Daniel"})
    assert again.status_code == 200 and again.json()["name"] == "Daniel"

    changed = api.eng(
        "PATCH",
        f"/teams/eng/members/{DAN}",
        json={
            "timezone": "Asia/Tokyo",
            "digest_cadence": "weekly",
            "digest_weekday": "fri",
            "digest_hour": 16,
            "role": "admin",
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "admin"
    assert changed.json()["schedule"].startswith("weekly on fri at 16:00 Asia/Tokyo")
    listed = members(stack, "eng")[DAN]
    assert (listed["timezone"], listed["digest_cadence"], listed["digest_hour"]) == (
        "Asia/Tokyo",
        "weekly",
        16,
    )
    typo = api.eng("PATCH", f"/teams/eng/members/{DAN}", json={"timezone": "Asia/Tokio"})
    assert typo.status_code == 422 and "Did you mean Asia/Tokyo" in detail(typo), typo.text
    hourly = api.eng("PATCH", f"/teams/eng/members/{DAN}", json={"digest_cadence": "hourly"})
    assert hourly.status_code == 422
    for stranger in (ERIN, CAROL):  # nobody's, and a member of another team
        answer = api.eng("PATCH", f"/teams/eng/members/{stranger}", json={"digest_hour": 8})
        assert answer.status_code == 404 and f"{stranger} is not a member of eng" in detail(answer)

    paused = api.eng("POST", f"/teams/eng/members/{DAN}/pause", json={"reason": "on leave"})
    assert paused.status_code == 200 and paused.json()["mail_paused_reason"] == "on leave"
    assert cli_members(stack, "eng")[DAN]["paused"] == "on leave"
    asked = stack.cli("checkin", "send", "eng")
    assert f"Held, not sent: mail to {DAN} is paused" in asked.stderr
    resumed = api.eng("POST", f"/teams/eng/members/{DAN}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["was_paused"] and resumed.json()["held_dropped"] == 1
    assert "paused" not in cli_members(stack, "eng")[DAN]
    assert api.eng("POST", f"/teams/eng/members/{DAN}/pause").json()["mail_paused_reason"] == (
        "paused by an admin"
    )
    api.eng("POST", f"/teams/eng/members/{DAN}/resume")

    removed = api.eng("DELETE", f"/teams/eng/members/{DAN}")
    assert removed.status_code == 200 and "no longer a member of eng" in removed.json()["message"]
    assert DAN not in members(stack, "eng")
    code, said = refusal(stack, DAN, address("eng"))
    assert code == 550 and "not a member of eng" in said
    assert api.eng("DELETE", f"/teams/eng/members/{DAN}").status_code == 404


def test_import_members_from_csv_with_a_dry_run_first(stack: Stack, api: Tokens) -> None:
    text = (
        "name,email,timezone,cadence,hour\n"
        f"Erin,{ERIN},Europe/Paris,weekly,8\n"
        f",{BOB},Europe/Berlin,,\n"
        f"Alice,{ALICE},,,\n"
    )
    before = members(stack, "eng")
    dry = api.eng(
        "POST",
        "/teams/eng/members/import",
        params={"dry_run": "true"},
        content=text,
        headers={"Content-Type": "text/csv"},
    )
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert [(r["row"], r["action"], r["email"]) for r in plan["rows"]] == [
        (2, "add", ERIN),
        (3, "change", BOB),
        (4, "same", ALICE),
    ]
    assert plan["rows"][1]["changes"] == ["timezone UTC -> Europe/Berlin"]
    assert plan["rows"][0]["description"] == "Erin, Europe/Paris, weekly digest at 08:00"
    assert (plan["dry_run"], plan["added"], plan["changed"], plan["unchanged"]) == (True, 1, 1, 1)
    assert plan["summary"] == "1 new, 0 joining from other teams, 1 changed, 1 unchanged"
    assert members(stack, "eng") == before

    done = api.eng("POST", "/teams/eng/members/import", json={"csv": text})
    assert done.status_code == 200 and done.json()["dry_run"] is False, done.text
    now = members(stack, "eng")
    assert (now[ERIN]["timezone"], now[ERIN]["digest_cadence"], now[ERIN]["digest_hour"]) == (
        "Europe/Paris",
        "weekly",
        8,
    )
    assert now[BOB]["timezone"] == "Europe/Berlin"
    again = api.eng("POST", "/teams/eng/members/import?dry_run=true", json={"csv": text})
    assert [r["action"] for r in again.json()["rows"]] == ["same"] * 3

    bad = api.eng(
        "POST",
        "/teams/eng/members/import",
        content="name,email,timezone,cadence,hour\nFay,fay@example,UTC,hourly,7\n",
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert bad.status_code == 422 and "nothing was imported" in detail(bad)
    assert "row 2: 'fay@example' is not an email address" in detail(bad)
    assert "row 2: unknown cadence 'hourly'" in detail(bad)
    assert "fay@example" not in str(members(stack, "eng"))
    form = api.eng("POST", "/teams/eng/members/import", data={"csv": text})
    assert form.status_code == 415 and "text/csv" in detail(form)
    latin = api.eng(
        "POST",
        "/teams/eng/members/import",
        content=text.replace("Erin", "Erín").encode("latin-1"),
        headers={"Content-Type": "text/csv"},
    )
    assert latin.status_code == 422 and "UTF-8" in detail(latin)


# The quarantine -------------------------------------------------------------------------------


def test_release_reruns_processing_and_discard_keeps_the_mail(stack: Stack, api: Tokens) -> None:
    # Alice answers her check-in from home: held, as that address is not hers yet.
    stack.cli("checkin", "send", "eng")
    home = "alice@home.example"
    reply = checkin_reply_address(stack, ALICE, "eng")
    stack.send(mail(home, reply, "Re: check-in", "I take Friday."), home, reply)
    held = wait_for(
        lambda: next((e for e in quarantined(stack) if e["mail_from"] == home), None),
        what="the held reply",
    )
    assert held["reason"] == "unverified-sender"

    listed = api.eng_read("GET", "/teams/eng/quarantine").json()
    assert held["id"] in [e["id"] for e in listed]
    assert held["id"] not in [e["id"] for e in api.ops("GET", "/teams/ops/quarantine").json()]
    nobodys = api.ops("POST", "/quarantine/999999/release")
    for action in ("release", "discard"):
        theirs = api.ops("POST", f"/quarantine/{held['id']}/{action}")
        assert theirs.status_code == nobodys.status_code == 404
        assert detail(theirs) == detail(nobodys).replace("999999", str(held["id"]))
    assert held["id"] in [e["id"] for e in quarantined(stack)]

    # Once the address is Alice's alias, releasing the message posts it under her name.
    stack.cli("member", "alias", "add", ALICE, home)
    confirm_alias(stack, home)
    released = api.eng("POST", f"/quarantine/{held['id']}/release")
    assert released.status_code == 200, released.text
    outcome = released.json()
    assert outcome["status"] == "processed" and len(outcome["posted"]) == 1
    [where] = outcome["posted"]
    assert where["team"] == "eng" and where["url"].endswith(f"/threads/{where['thread_id']}")
    assert outcome["message"].startswith("Posted to eng:")
    answers = [u for u in updates_of(stack, where["thread_id"]) if u["body"] == "I take Friday."]
    assert [u["author"]["email"] for u in answers] == [ALICE]
    assert held["id"] not in [e["id"] for e in quarantined(stack)]

    # An auto-reply is kept out again when released; discarded, it is kept, not deleted.
    away = mail(
        BOB,
        address("eng"),
        "Out of office",
        "I am out of the office.",
        Auto_Submitted="auto-replied",
    )
    stack.send(away, BOB, address("eng"))
    entry = wait_for(
        lambda: next((e for e in quarantined(stack) if e["mail_from"] == BOB), None),
        what="the auto-reply",
    )
    again = api.eng("POST", f"/quarantine/{entry['id']}/release")
    assert again.status_code == 200 and again.json()["status"] == "quarantined", again.text
    assert again.json()["reason"] == "auto-reply"
    assert "quarantined again: auto-reply" in again.json()["message"]
    discarded = api.eng("POST", f"/quarantine/{entry['id']}/discard")
    assert discarded.status_code == 200 and discarded.json()["reason"] == "auto-reply"
    assert entry["id"] not in [e["id"] for e in api.eng("GET", "/teams/eng/quarantine").json()]
    kept = api.eng("GET", "/teams/eng/quarantine", params={"discarded": "true"}).json()
    assert entry["id"] in [e["id"] for e in kept]
    twice = api.eng("POST", f"/quarantine/{entry['id']}/discard")
    assert twice.status_code == 422 and "not in the quarantine (it is discarded)" in detail(twice)


# Digests and keys -----------------------------------------------------------------------------


def test_resend_a_digest(stack: Stack, api: Tokens) -> None:
    never = api.ops("POST", f"/teams/ops/members/{CAROL}/digest/resend")
    assert never.status_code == 404 and "has not had a digest yet" in detail(never)
    post(stack, ALICE, address("eng"), "Loom news", "The shuttle is threaded.", "eng")
    stack.cli("digest", "run", "--now")
    first = wait_for(lambda: digests_for(stack, BOB), what="Bob's digest")[-1]
    count = len(digests_for(stack, BOB))

    # The digest is in the Maildir a moment before its row is marked sent: 409 until then.
    resent = wait_for(
        lambda: (
            (r := api.eng("POST", f"/teams/eng/members/{BOB}/digest/resend")).status_code != 409
            and r
        ),
        what="the resend",
    )
    assert resent.status_code == 202, resent.text
    assert resent.json()["recipient"] == BOB and resent.json()["subject"] == first["Subject"]
    second = wait_for(lambda: digests_for(stack, BOB)[count:], what="the resent digest")[0]
    assert second["Subject"] == first["Subject"] and second["Message-ID"] != first["Message-ID"]
    assert "The shuttle is threaded." in second.get_body(("plain",)).get_content()

    api.eng("POST", f"/teams/eng/members/{BOB}/pause")
    paused = api.eng("POST", f"/teams/eng/members/{BOB}/digest/resend")
    assert paused.status_code == 409 and "tidings member resume" in detail(paused)
    api.eng("POST", f"/teams/eng/members/{BOB}/resume")


def test_rotate_keys_and_old_reply_addresses_still_work(stack: Stack, api: Tokens) -> None:
    stack.cli("checkin", "send", "eng")
    old_reply = checkin_reply_address(stack, BOB, "eng")

    rotated = api.admin("POST", "/secrets/rotate")
    assert rotated.status_code == 200, rotated.text
    keys = rotated.json()
    assert keys["signing_version"] == 2
    assert [(k["version"], k["status"]) for k in keys["versions"]] == [
        (1, "verifying"),
        (2, "signing"),
    ]
    assert "tidings secret retire 1" in keys["message"]
    assert key_versions(stack) == [(1, "verifying"), (2, "signing")]

    answer = "Answered after the rotation."
    stack.send(mail(BOB, old_reply, "Re: check-in", answer), BOB, old_reply)
    checkin = next(t for t in stack.api("/teams/eng/threads").json() if t["checkin_date"])
    wait_for(
        lambda: [u for u in updates_of(stack, checkin["id"]) if u["body"] == answer],
        what="the answer to the old reply address",
    )
