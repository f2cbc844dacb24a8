"""A private Postfix instance for one test, set up as docs/deploy.md says ("Behind Postfix").

Its own configuration, queue and data directories in a fresh temporary directory, its
smtpd on a free loopback port, its log in a file there (`maillog_file`), started with
`postfix -c DIR start` and stopped at the end: it never touches the system's Postfix.
The lines for Tidings (`relay_domains`, `transport_maps` and the transport entry) are read
from docs/deploy.md with its example names swapped for the test's, so a test through this
instance fails when the documented settings stop working.
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, TypeVar

import pytest

from tests.conftest import IN_CI
from tests.e2e.stack import DOMAIN, wait_for

T = TypeVar("T")
POSTFIX = Path("/usr/sbin/postfix")
DEPLOY_DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
MTA_HOSTNAME = "mx.example.com"  # the MX host name docs/deploy.md uses

# Everything but Tidings' part: one instance on loopback that relays the rest of the world
# to `relayhost` (the test's capture sink). The short retry times let a test wait for
# mail rather than for Postfix's five-minute backoff after a refused delivery.
MAIN_CF = """\
compatibility_level = 3.6
myhostname = {hostname}
mydestination =
alias_maps =
alias_database =
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relayhost_port}
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""

# Debian's master.cf, minus what delivers locally, with smtpd on the test's port and
# nothing chrooted (the queue is in a temporary directory, not under /var/spool).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
lmtp      unix  - - n -     - lmtp
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def require_postfix() -> None:
    """Skip the test when this machine cannot run a Postfix of its own; fail in CI."""
    if not POSTFIX.exists():
        problem = f"{POSTFIX} is missing: install Debian's postfix as .ci/run does"
    elif os.geteuid() != 0:
        problem = "Postfix's master must be started as root, and these tests run as another user"
    else:
        return
    if IN_CI:
        pytest.fail(f"{problem}; CI must run the Postfix tests")
    pytest.skip(problem)


def documented_settings(
    config_dir: Path, delivery: Literal["smtp", "lmtp"], port: int
) -> tuple[str, str]:
    """docs/deploy.md's main.cf lines and its transport entry for `delivery`, for this
    test's domain, configuration directory and Tidings port."""
    docs = DEPLOY_DOCS.read_text()
    section = docs.split("## Behind Postfix", 1)[1].split("\n## ", 1)[0]
    main_cf, transport = re.findall(r"```[a-z]*\n(.*?)```", section, re.DOTALL)[:2]
    entries = [line.lstrip("# ").split() for line in transport.splitlines()]
    found = [
        e
        for e in entries
        if len(e) == 2 and e[0] == "updates.example.com" and e[1].startswith(f"{delivery}:")
    ]
    assert len(found) == 1, f"{DEPLOY_DOCS} must show one {delivery} transport entry: {transport}"
    [entry] = found

    def ours(text: str) -> str:
        text = text.replace("updates.example.com", DOMAIN).replace("/etc/postfix", str(config_dir))
        return text.replace(":2525", f":{port}")

    return ours(main_cf), ours("    ".join(entry))


@dataclass
class Postfix:
    root: Path
    port: int

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    def run(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command, "-c", str(self.config_dir), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def must(self, command: str, *args: str) -> None:
        result = self.run(command, *args)
        if result.returncode != 0:
            raise AssertionError(
                f"{command} {' '.join(args)} failed:\n{result.stderr}{self.diagnostics()}"
            )

    def diagnostics(self) -> str:
        """Postfix's log and its queue (with why each message waits), for a failure message."""
        log = self.root / "maillog"
        queue = self.run(str(POSTFIX.parent / "postqueue"), "-p")
        return (
            f"\n--- Postfix log {log} ---\n{log.read_text() if log.exists() else '(none)'}"
            f"\n--- postqueue -p ---\n{queue.stdout}{queue.stderr}"
        )

    def wait_for(self, check: Callable[[], T | None], what: str) -> T:
        """stack.wait_for, with what Postfix did in the failure message."""
        try:
            return wait_for(check, 30, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}{self.diagnostics()}") from None

    def send(self, msg: EmailMessage, sender: str, to: list[str] | str) -> None:
        """Hand a message to Postfix's smtpd, as a mail server on the internet would."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as smtp:
            smtp.send_message(msg, sender, to)

    def stop(self) -> None:
        # Waits for the master, and kills its process group if it has not gone in 5 s.
        self.run(str(POSTFIX), "stop")


@contextmanager
def running_postfix(
    port: int, delivery: Literal["smtp", "lmtp"], tidings_port: int, relayhost_port: int
) -> Iterator[Postfix]:
    """Postfix on 127.0.0.1:`port`, relaying DOMAIN to Tidings on `tidings_port` over
    `delivery` and all other mail to 127.0.0.1:`relayhost_port`."""
    require_postfix()
    # Not pytest's tmp_path: that is private to root, and Postfix's daemons run as the
    # postfix user inside the queue directory.
    root = Path(tempfile.mkdtemp(prefix="tidings-postfix-"))
    root.chmod(0o755)
    postfix = Postfix(root, port)
    postfix.config_dir.mkdir()
    (root / "queue").mkdir()
    main_cf, transport = documented_settings(postfix.config_dir, delivery, tidings_port)
    settings = MAIN_CF.format(hostname=MTA_HOSTNAME, root=root, relayhost_port=relayhost_port)
    (postfix.config_dir / "main.cf").write_text(settings + main_cf)
    (postfix.config_dir / "master.cf").write_text(MASTER_CF.format(port=port))
    (postfix.config_dir / "transport").write_text(transport + "\n")
    try:
        postfix.must(str(POSTFIX.parent / "postmap"), str(postfix.config_dir / "transport"))
        postfix.must(str(POSTFIX), "check")  # creates the queue's subdirectories
        postfix.must(str(POSTFIX), "start")
        yield postfix
    finally:
        postfix.stop()
        shutil.rmtree(root, ignore_errors=True)
