"""Revoked tokens during the soak (issue 14): an administrator demotes one user and deletes another, and a
third logs out, while the load runs. Each one's earlier token is then tried on every service until the
end: none may succeed later than the bound after its revocation was acknowledged, and a fresh login works.

The other services learn of a revocation from the users service's `user.changed` / `user.deleted`
events (the broker runs for that), so the bound is the events' way from the users service's outbox to
each consumer. A token's `iat` keeps milliseconds, so the fresh logins right after the changes must work
at once on every service.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from starling_devtools.harness import Check, bearer, check, issued, plain_gets


@dataclass
class Victim:
    kind: str  # "demoted", "deleted" or "logged out"
    email: str
    user_id: str = ""
    token: str = ""  # issued before the revocation
    revoked_at: float = 0.0  # wall-clock time the revocation was acknowledged; 0.0 before


@dataclass
class Revocations:
    client: httpx.AsyncClient
    urls: Mapping[str, str]
    admin_token: str
    password: str
    victims: list[Victim] = field(default_factory=list)
    probes: dict[str, str] = field(default_factory=dict)  # service -> a GET a user's token reaches
    # (victim kind, service, seconds after its revocation (negative: before), status or 0 for no answer)
    seen: list[tuple[str, str, float, int]] = field(default_factory=list)
    fresh: dict[str, dict[str, int]] = field(default_factory=dict)  # victim kind -> service -> status
    secrets: set[str] = field(default_factory=set)

    async def _send(self, method: str, url: str, token: str, body: Any = None) -> httpx.Response:
        return await self.client.request(method, url, headers=bearer(token), json=body)

    async def _login(self, email: str) -> httpx.Response:
        body = {"email": email, "password": self.password}
        response = await self.client.post(f"{self.urls['users']}/auth/token", json=body)
        if response.status_code == 200:
            self.secrets.update(issued(response.json()))
        return response

    async def prepare(self) -> None:
        """The three victims registered (one made an administrator), logged in, and each service's probe."""
        users = self.urls["users"]
        for kind in ("demoted", "deleted", "logged out"):
            victim = Victim(kind, f"revoked-{kind.replace(' ', '-')}@soak.example.com")
            body = {"name": kind, "email": victim.email, "password": self.password}
            created = await self.client.post(f"{users}/users", json=body)
            created.raise_for_status()
            victim.user_id = created.json()["id"]
            self.victims.append(victim)
        promoted = await self._send(
            "PATCH", f"{users}/users/{self.victims[0].user_id}", self.admin_token, {"role": "admin"}
        )
        promoted.raise_for_status()
        for victim in self.victims:
            answer = await self._login(victim.email)
            answer.raise_for_status()
            victim.token = answer.json()["access_token"]
        self.probes = await self._find_probes(self.victims[-1].token)

    async def _find_probes(self, token: str) -> dict[str, str]:
        """Per service, the first guarded GET without parameters that a plain user's token passes."""
        probes = {"users": f"{self.urls['users']}/users/me"}
        for name, url in self.urls.items():
            document = (await self.client.get(f"{url}/openapi.json")).json()
            for path, guarded in plain_gets(document):
                if (
                    name not in probes
                    and guarded
                    and (await self._send("GET", f"{url}{path}", token)).is_success
                ):
                    probes[name] = f"{url}{path}"
        return probes

    async def revoke(self) -> None:
        """The demotion and the deletion by the administrator, the logout by its own user."""
        users = self.urls["users"]
        demoted, deleted, logged_out = self.victims
        changes = [
            (demoted, "PATCH", f"{users}/users/{demoted.user_id}", self.admin_token, {"role": "user"}),
            (deleted, "DELETE", f"{users}/users/{deleted.user_id}", self.admin_token, None),
            (logged_out, "POST", f"{users}/auth/logout", logged_out.token, None),
        ]
        for victim, method, url, token, body in changes:
            (await self._send(method, url, token, body)).raise_for_status()
            victim.revoked_at = time.time()

    async def watch(self, until: asyncio.Event, interval: float = 0.2) -> None:
        """Every victim's earlier token on every probe, again and again until `until` is set."""
        while not until.is_set():
            for victim in self.victims:
                for name, url in self.probes.items():
                    try:
                        status = (await self._send("GET", url, victim.token)).status_code
                    except httpx.HTTPError:
                        status = 0
                    since = time.time() - victim.revoked_at if victim.revoked_at else -1.0
                    self.seen.append((victim.kind, name, since, status))
            await asyncio.sleep(interval)

    async def afterwards(self) -> None:
        """Fresh logins: the demoted and the logged-out user get in again, the deleted one does not."""
        for victim in self.victims:
            answer = await self._login(victim.email)
            statuses = {"login": answer.status_code}
            if answer.status_code == 200:
                token = answer.json()["access_token"]
                for name, url in self.probes.items():
                    statuses[name] = (await self._send("GET", url, token)).status_code
                listed = await self._send("GET", f"{self.urls['users']}/users", token)
                statuses["GET /users (administrators only)"] = listed.status_code
            self.fresh[victim.kind] = statuses

    def checks(self, bound: float) -> list[Check]:
        before = {
            (kind, name) for kind, name, since, status in self.seen if since < 0 and 200 <= status < 300
        }
        wanted = {(victim.kind, name) for victim in self.victims for name in self.probes}
        late: dict[str, float] = {}
        after_bound: Counter[int] = Counter()
        for _, name, since, status in self.seen:
            if since >= 0 and 200 <= status < 300:
                late[name] = max(late.get(name, 0.0), since)
            if since > bound:
                after_bound[status] += 1
        observed = ", ".join(f"{name} {late.get(name, 0.0):.2f} s" for name in self.probes)
        # signed in again as a plain user: every probe passes, the administrators' list does not
        again = {"login": 200, **dict.fromkeys(self.probes, 200), "GET /users (administrators only)": 403}
        expected_fresh = {"demoted": again, "deleted": {"login": 401}, "logged out": again}
        unprobed = sorted(set(self.urls) - set(self.probes))
        return [
            check(
                "revoked tokens worked on every service before their revocation",
                before == wanted,
                f"{len(before)} of {len(wanted)} (victim, service) pairs answered 2xx before; probes "
                + ", ".join(f"{name} {url.split('/', 3)[-1]}" for name, url in self.probes.items())
                + (
                    f"; NOT CHECKED on {unprobed}: no route there takes a token a user can log in to "
                    "(no role is granted its scopes: STARLING_USERS_ROLE_SCOPES)"
                    if unprobed
                    else ""
                ),
            ),
            check(
                f"no revoked token accepted later than {bound:.0f} s after its revocation",
                max(late.values(), default=0.0) <= bound
                and set(after_bound) <= {401}
                and sum(after_bound.values()) > 0,
                f"demotion, deletion and logout; last 2xx after the revocation: {observed}; "
                f"{sum(after_bound.values())} tries after the bound answered {dict(after_bound)}",
            ),
            check(
                "a fresh login works after the revocation (not for the deleted user)",
                self.fresh == expected_fresh,
                "; ".join(f"{kind}: {statuses}" for kind, statuses in self.fresh.items()),
            ),
        ]
