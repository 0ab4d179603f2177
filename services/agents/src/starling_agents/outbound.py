"""Where `llm` agents may send requests, and which key goes with them.

An agent names its endpoint (`config.base_url`, else `STARLING_AGENTS_LLM_BASE_URL`), and an admin may
name any URL: so a request goes only to a host on the allow-list (`STARLING_AGENTS_LLM_ALLOWED_HOSTS`,
by default the host and port of the default base URL, else none), and a key only to the host it was
configured for. Keys are named in settings (`STARLING_AGENTS_LLM_KEYS`: name -> `{"key", "host"}`, plus
`STARLING_AGENTS_LLM_API_KEY` as the key named `default`, bound to the default base URL's host); an agent
names one in `config.key_name` and never holds the key itself. The policy is asked twice: when an agent
is created (a refusal is a 422) and before every request (a refusal fails the run, nothing is sent),
since the settings may have changed in between.

A host rule is `host` (any port) or `host:port`; hosts compare exactly, lower-cased and IDNA-encoded:
`localhost` does not allow `127.0.0.1`, and `llm.test` does not allow `api.llm.test`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from starling_agents.schemas import LLMConfig

# The key of STARLING_AGENTS_LLM_API_KEY, which agents that name no key use where it may go.
DEFAULT_KEY = "default"
CHAT_COMPLETIONS = "/v1/chat/completions"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_RULE = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/@?#\[\]]+)(?::(?P<port>[0-9]{1,5}))?")


class Refusal(NamedTuple):
    """Why a request may not be sent: the config field at fault, a pydantic-style type, and the reason."""

    field: str
    type: str
    message: str


@dataclass(frozen=True)
class HostRule:
    host: bytes  # as httpx.URL.raw_host gives it: lower case, IDNA-encoded, IPv6 without brackets
    port: int | None = None  # None: any port

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """`llm.example.com`, `llm.example.com:8443`, `127.0.0.1:11434` or `[::1]:8000`."""
        match = _RULE.fullmatch(text.strip())
        port = int(match["port"]) if match and match["port"] else None
        if match is None or (port is not None and not 0 < port < 65536):
            raise ValueError(f"Invalid host {text!r}: expected a host name or address, optionally with :port")
        try:
            host = httpx.URL(f"http://{match['host']}/").raw_host
        except httpx.InvalidURL as exc:
            raise ValueError(f"Invalid host {text!r}: {exc}") from None
        return cls(host, port)

    @classmethod
    def of(cls, url: httpx.URL) -> HostRule:
        """The rule that allows exactly `url`'s host and port."""
        return cls(url.raw_host, _port(url))

    def matches(self, url: httpx.URL) -> bool:
        return url.raw_host == self.host and self.port in (None, _port(url))

    def __str__(self) -> str:
        host = self.host.decode("ascii")
        host = f"[{host}]" if ":" in host else host
        return host if self.port is None else f"{host}:{self.port}"


def _port(url: httpx.URL) -> int | None:
    return url.port or _DEFAULT_PORTS.get(url.scheme)


class LLMKey(BaseModel):
    """One named key of `STARLING_AGENTS_LLM_KEYS` and the host (`host` or `host:port`) it may go to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: SecretStr
    host: str

    @field_validator("host")
    @classmethod
    def _a_host(cls, value: str) -> str:
        HostRule.parse(value)
        return value


class OutboundPolicy:
    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str] | None = None,
        keys: Mapping[str, LLMKey] | None = None,
        default_base_url: str | None = None,
    ) -> None:
        """`allowed_hosts` None: the default base URL's host and port only (nothing without one)."""
        self.default_base_url = default_base_url
        if allowed_hosts is None:
            default = [HostRule.of(httpx.URL(default_base_url))] if default_base_url else []
            self.allowed: tuple[HostRule, ...] = tuple(default)
        else:
            self.allowed = tuple(HostRule.parse(entry) for entry in allowed_hosts)
        self.keys = {name: (key.key, HostRule.parse(key.host)) for name, key in (keys or {}).items()}

    def endpoint(self, config: LLMConfig) -> httpx.URL | None:
        """The chat-completions URL of an agent; None when neither it nor the settings name a base URL."""
        base_url = config.base_url or self.default_base_url
        return httpx.URL(base_url.rstrip("/") + CHAT_COMPLETIONS) if base_url else None

    def refusal(self, config: LLMConfig) -> Refusal | None:
        """Why the agent's request (to its endpoint, with its key) may not be sent; None when it may."""
        url = self.endpoint(config)
        if url is not None and not any(rule.matches(url) for rule in self.allowed):
            return Refusal(
                "base_url",
                "host_not_allowed",
                f"LLM host {str(HostRule.of(url))!r} is not allowed: "
                "llm agents may call only the hosts of STARLING_AGENTS_LLM_ALLOWED_HOSTS",
            )
        if config.key_name is None:
            return None  # the default key, if there is one, goes only where it may; none is needed
        if config.key_name not in self.keys:
            return Refusal(
                "key_name", "unknown_key", f"No LLM key named {config.key_name!r} in STARLING_AGENTS_LLM_KEYS"
            )
        _, host = self.keys[config.key_name]
        if url is not None and not host.matches(url):
            where = (str(host), str(HostRule.of(url)))
            return Refusal(
                "key_name",
                "key_for_another_host",
                f"LLM key {config.key_name!r} may be sent only to {where[0]!r}, not {where[1]!r}",
            )
        return None

    def headers(self, url: httpx.URL, key_name: str | None) -> dict[str, str]:
        """The Authorization header for `url`: the agent's key (or the default one) if bound to its host."""
        bound = self.keys.get(key_name or DEFAULT_KEY)
        if bound is None or not bound[1].matches(url):
            return {}
        return {"Authorization": f"Bearer {bound[0].get_secret_value()}"}
