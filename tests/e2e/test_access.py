"""Who may read what in the web archive: private teams for their signed-in members,
public teams for anyone; sign-in by emailed link, once, for 15 minutes; sign-out.

Runs once on SQLite and once on the live PostgreSQL (see conftest.database_url).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import delete, update

from app import store
from app.db import make_engine, session_scope, upgrade
from app.main import create_app
from app.models import SignInRequest, utcnow
from app.settings import Settings
from tests.conftest import free_port
from tests.e2e.stack import DOMAIN, Stack, mail, make_stack, thread_titled, wait_for

ALICE, CAROL = "alice@example.com", "carol@example.net"


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = make_stack(tmp_path_factory.mktemp("var"), database_url, free_port(), free_port())
    stack.start()
    try:
        stack.cli("team", "create", "eng", "--name", "Engineering")
        stack.cli("team", "create", "ops", "--name", "Operations")
        stack.cli("team", "create", "news", "--name", "Newsroom", "--public")
        stack.cli("member", "add", "eng", ALICE, "--name", "Alice")
        stack.cli("member", "add", "news", ALICE, "--name", "Alice")
        stack.cli("member", "add", "ops", CAROL, "--name", "Carol")
        stack.token = stack.cli("token", "create").stdout.strip().splitlines()[-1]
        post(stack, ALICE, "eng", "Eng secret plan", "The zeppelin budget is approved.")
        post(stack, CAROL, "ops", "Ops incident", "The walrus cluster is down.", attach=True)
        post(stack, ALICE, "news", "Public news", "The narwhal launch is public.")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def fresh_rate_limits(stack: Stack) -> None:
    """Every test starts a new 15-minute window: the limits are tested on their own."""
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:
            session.exec(delete(SignInRequest))  # type: ignore[call-overload]
    finally:
        engine.dispose()


def post(
    stack: Stack, sender: str, team: str, subject: str, body: str, attach: bool = False
) -> None:
    msg = mail(sender, f"{team}@{DOMAIN}", subject, body)
    if attach:
        msg.add_attachment(b"walrus logs", maintype="text", subtype="plain", filename="ops.log")
    stack.send(msg, sender, f"{team}@{DOMAIN}")
    wait_for(lambda: thread_titled(stack, subject, team), what=subject)


def ids(stack: Stack) -> dict[str, int]:
    """Thread ids by title, and the ops attachment's id, through the API (admin token)."""
    found = {}
    for team in ("eng", "ops", "news"):
        for thread in stack.api(f"/teams/{team}/threads").json():
            found[thread["title"]] = thread["id"]
    [update_] = stack.api(f"/threads/{found['Ops incident']}").json()["updates"]
    found["ops attachment"] = update_["attachments"][0]["id"]
    return found


def sign_in_link(stack: Stack, address: str, count_before: int) -> str:
    def link() -> str | None:
        mails = [m for m in stack.outbox() if "sign-in link" in str(m["Subject"])]
        mails = [m for m in mails if m["To"].addresses[0].addr_spec == address]
        if len(mails) <= count_before:
            return None
        text = mails[-1].get_body(("plain",)).get_content()
        return re.search(r"http://\S+/signin/\S+", text).group(0)  # type: ignore[union-attr]

    return wait_for(link, what=f"the sign-in link for {address}")


def links_sent(stack: Stack, address: str) -> int:
    return sum(
        "sign-in link" in str(m["Subject"]) and m["To"].addresses[0].addr_spec == address
        for m in stack.outbox()
    )


def signed_in(stack: Stack, address: str, next_path: str = "/") -> httpx.Client:
    """A browser signed in as `address`, the way a person does it."""
    before = links_sent(stack, address)
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    asked = client.post("/signin", data={"email": address, "next": next_path})
    assert asked.status_code == 200 and "Check your email" in asked.text
    link = sign_in_link(stack, address, before)
    # A page with a button: scanners sign nobody in.
    assert "Sign in to Tidings" in client.get(link).text
    done = client.post(link)
    assert done.status_code == 303 and "tidings_session=" in done.headers["set-cookie"], done.text
    return client


def test_signed_out_visitors_see_public_teams_only(stack: Stack) -> None:
    found = ids(stack)
    home = stack.get("/")
    assert "Newsroom" in home.text and "Engineering" not in home.text
    assert "Operations" not in home.text
    for path in (
        "/teams/eng",
        f"/threads/{found['Eng secret plan']}",
        f"/attachments/{found['ops attachment']}",
    ):
        response = stack.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/signin?next={path}"
    assert stack.get(f"/threads/{found['Public news']}").status_code == 200
    assert "Public news" in stack.get("/search", q="narwhal").text
    assert "Eng secret plan" not in stack.get("/search", q="zeppelin").text
    assert "Ops incident" not in stack.get("/search", q="walrus").text


def test_a_member_reads_their_teams_and_gets_404_for_others(stack: Stack) -> None:
    found = ids(stack)
    alice = signed_in(stack, ALICE, f"/threads/{found['Eng secret plan']}")
    landing = alice.get(f"/threads/{found['Eng secret plan']}")
    assert landing.status_code == 200 and "zeppelin budget" in landing.text
    assert "Sign out" in landing.text
    assert alice.get("/teams/eng").status_code == 200
    assert alice.get("/teams/ops").status_code == 404
    assert alice.get(f"/threads/{found['Ops incident']}").status_code == 404
    assert alice.get(f"/attachments/{found['ops attachment']}").status_code == 404
    assert alice.get("/teams/no-such-team").status_code == 404  # same answer as ops
    assert "Ops incident" not in alice.get("/search", params={"q": "walrus"}).text
    assert "Eng secret plan" in alice.get("/search", params={"q": "zeppelin"}).text
    assert "Operations" not in alice.get("/").text

    carol = signed_in(stack, CAROL)
    download = carol.get(f"/attachments/{found['ops attachment']}")
    assert download.status_code == 200, download.headers
    assert download.content == b"walrus logs"
    assert carol.get(f"/threads/{found['Eng secret plan']}").status_code == 404


def test_the_sign_in_cookie_and_link_rules(stack: Stack) -> None:
    before = links_sent(stack, ALICE)
    client = httpx.Client(base_url=stack.base_url, timeout=10)
    client.post("/signin", data={"email": ALICE, "next": "//evil.example/phish"})
    link = sign_in_link(stack, ALICE, before)
    done = client.post(link)
    assert done.headers["location"] == "/"  # never off-site
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    again = httpx.post(link, timeout=10)  # a link works once
    assert again.status_code == 403 and "work once" in again.text

    before = links_sent(stack, ALICE)
    httpx.post(f"{stack.base_url}/signin", data={"email": ALICE}, timeout=10)
    late = sign_in_link(stack, ALICE, before)
    engine = make_engine(stack.env["TIDINGS_DATABASE_URL"])
    try:
        with session_scope(engine) as session:
            session.exec(  # type: ignore[call-overload]
                update(SignInRequest).values(expires_at=utcnow() - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    assert httpx.get(late, timeout=10).status_code == 403  # 15 minutes are over


def test_unknown_addresses_get_the_same_answer_and_no_mail(stack: Stack) -> None:
    before = len(stack.outbox())
    known = httpx.post(f"{stack.base_url}/signin", data={"email": ALICE}, timeout=10)
    unknown = httpx.post(
        f"{stack.base_url}/signin", data={"email": "x@nowhere.example"}, timeout=10
    )
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(ALICE, "X") == unknown.text.replace("x@nowhere.example", "X")
    wait_for(lambda: len(stack.outbox()) == before + 1, what="Alice's link")
    assert not any(m["To"].addresses[0].addr_spec == "x@nowhere.example" for m in stack.outbox())


def test_asking_too_often_is_refused_with_advice(stack: Stack) -> None:
    address = "rate@limited.example"
    answers = [
        httpx.post(f"{stack.base_url}/signin", data={"email": address}, timeout=10).status_code
        for _ in range(6)
    ]
    assert answers == [200] * 5 + [429]
    refused = httpx.post(f"{stack.base_url}/signin", data={"email": address}, timeout=10)
    assert "try again in 15 minutes" in refused.text


def test_sign_out_ends_the_session(stack: Stack) -> None:
    alice = signed_in(stack, ALICE)
    assert alice.get("/teams/eng").status_code == 200
    out = alice.post("/signout")
    assert out.status_code == 303
    assert alice.get("/teams/eng").status_code == 303  # back to signing in


async def test_the_session_cookie_is_secure_when_the_archive_is_https(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'https.db'}"
    upgrade(url)
    engine = make_engine(url)
    settings = Settings(
        data_dir=tmp_path, database_url=url, base_url="https://archive.example", mail_domain=DOMAIN
    )
    with session_scope(engine) as session:
        store.create_team(session, "eng", "Engineering")
        store.add_member(session, "eng", ALICE, "Alice")
        found = store.request_sign_in(session, ALICE, "192.0.2.1", "/teams/eng", utcnow())
    assert found is not None
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://archive.example") as web:
        done = await web.post(f"/signin/{found[1]}")
        assert done.status_code == 303 and done.headers["location"] == "/teams/eng"
        assert "secure" in done.headers["set-cookie"].lower()
        assert (await web.get("/teams/eng")).status_code == 200
    engine.dispose()


def test_update_permalinks_survive_signing_in(stack: Stack) -> None:
    found = ids(stack)
    [update] = stack.api(f"/threads/{found['Eng secret plan']}").json()["updates"]
    path = f"/updates/{update['id']}"
    assert stack.get(path).headers["location"] == f"/signin?next={path}"
    alice = signed_in(stack, ALICE, path)
    back = alice.get(path)
    assert back.status_code == 303
    assert back.headers["location"] == f"/threads/{found['Eng secret plan']}#u{update['id']}"
    carol = signed_in(stack, CAROL)
    assert carol.get(path).status_code == 404


def test_member_pages_show_only_what_the_viewer_may_read(stack: Stack) -> None:
    found = ids(stack)
    [eng_update] = stack.api(f"/threads/{found['Eng secret plan']}").json()["updates"]
    alice_id = eng_update["author"]["id"]
    [ops_update] = stack.api(f"/threads/{found['Ops incident']}").json()["updates"]
    carol_id = ops_update["author"]["id"]
    public_view = stack.get(f"/members/{alice_id}")
    assert public_view.status_code == 200
    assert "Public news" in public_view.text and "Eng secret plan" not in public_view.text
    alice = signed_in(stack, ALICE)
    own = alice.get(f"/members/{alice_id}").text
    assert "Public news" in own and "Eng secret plan" in own
    assert alice.get(f"/members/{carol_id}").status_code == 404  # no team in common


def test_a_revoked_api_token_is_refused(stack: Stack) -> None:
    token = stack.cli("token", "create", "--team", "eng").stdout.strip().splitlines()[-1]
    api = f"{stack.base_url}/api/teams/eng/threads"
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = stack.cli("token", "list").stdout
    number = re.findall(r"#(\d+)\s+eng\s+read\s+active", listed)[-1]
    assert token not in listed  # tokens are stored hashed: never shown again
    stack.cli("token", "revoke", number)
    assert httpx.get(api, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert re.search(rf"#{number}\s+eng\s+read\s+revoked", stack.cli("token", "list").stdout)


def test_atom_feeds_carry_a_members_token_and_show_only_their_teams(stack: Stack) -> None:
    atom = "{http://www.w3.org/2005/Atom}"
    public = stack.get("/teams/news/feed.atom")
    assert public.headers["content-type"].startswith("application/atom+xml")
    titles = [
        e.findtext(f"{atom}title") for e in ET.fromstring(public.content).iter(f"{atom}entry")
    ]
    assert titles == ["Public news"]
    assert stack.get("/teams/eng/feed.atom").status_code == 404

    alice = signed_in(stack, ALICE)
    link = re.search(
        r'href="(http://[^"]+/teams/eng/feed\.atom\?t=[^"]+)"', alice.get("/teams/eng").text
    )
    assert link is not None
    url = link.group(1).replace("&amp;", "&")
    feed = httpx.get(url, timeout=10)  # a feed reader: no cookie, only the link
    assert feed.status_code == 200
    [entry] = ET.fromstring(feed.content).iter(f"{atom}entry")
    assert entry.findtext(f"{atom}title") == "Eng secret plan"
    assert "zeppelin budget" in (entry.findtext(f"{atom}content") or "")
    token = url.split("t=")[1]
    ops = httpx.get(f"{stack.base_url}/teams/ops/feed.atom", params={"t": token}, timeout=10)
    assert ops.status_code == 404  # Alice's token does not open Carol's team
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    forged = httpx.get(f"{stack.base_url}/teams/eng/feed.atom", params={"t": altered}, timeout=10)
    assert forged.status_code == 404


def test_members_change_their_own_settings_on_the_settings_page(stack: Stack) -> None:
    response = stack.get("/settings")
    assert response.status_code == 303 and response.headers["location"] == "/signin?next=/settings"
    alice = signed_in(stack, ALICE, "/settings")
    page = alice.get("/settings")
    assert page.status_code == 200 and "<h1>Your settings</h1>" in page.text
    form = {
        "cadence": "weekly",
        "hour": "7",
        "weekday": "fri",
        "timezone": "Europe/Berlin",
        "quiet": "21:00-07:00",
        "away": "",
    }
    saved = alice.post("/settings", data=form)
    assert saved.status_code == 200 and "Saved." in saved.text
    schedule = "weekly on fri at 07:00 Europe/Berlin; quiet 21:00-07:00"
    assert schedule in stack.cli("member", "list", "eng").stdout
    wrong = alice.post("/settings", data=form | {"timezone": "Europe/Berln"})
    assert wrong.status_code == 400 and "Did you mean Europe/Berlin" in wrong.text
    elsewhere = alice.post(
        "/settings", data=form | {"cadence": "off"}, headers={"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 403
    assert schedule in stack.cli("member", "list", "eng").stdout
