"""Which Authentication-Results ticketd believes, and what they prove about the From domain.

The end-to-end cases (a forged agent reply through the listener) are in tests/test_agents.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.config import ConfigError
from domain.sender_auth import (
    AuthResult,
    aligned,
    believed,
    organizational_domain,
    parse_results,
)
from ingest.agent_replies import authentication_failure
from ingest.parsing import parse_message
from ingest.pipeline import step_believe
from tests.helpers import customer_mail, make_config

OWN = "mx.destek.example.com"
GATEWAY = "gw.destek.example.com"


def verdict_of(*headers: str, from_domain: str = "example.com") -> tuple[int, bool, bool]:
    pairs = [("authentication-results", h) for h in headers]
    kept, verdict = believed(pairs, from_domain, OWN, [GATEWAY])
    return len(kept), verdict.aligned_pass, verdict.refuted


def test_alignment_is_the_same_organization_never_a_substring() -> None:
    assert aligned("example.com", "example.com")
    assert aligned("mail.example.com", "example.com")  # relaxed: same organizational domain
    assert aligned("example.com.tr", "destek.example.com.tr")
    assert not aligned("example.com.evil.net", "example.com")
    assert not aligned("evil-example.com", "example.com")
    assert not aligned("com.tr", "example.com.tr")
    assert not aligned("mail.example.com", "example.com", strict=True)
    assert organizational_domain("a.b.example.com.tr") == "example.com.tr"


def test_only_our_id_and_the_trusted_ids_count() -> None:
    # A header with our own id was written by the sender: removed, and it proves nothing.
    assert verdict_of(f"{OWN}; dkim=pass header.d=example.com") == (0, False, False)
    # A header of an id nobody listed stays for people to read but proves nothing.
    assert verdict_of("mx.evil.example; dkim=pass header.d=example.com") == (1, False, False)
    # The trusted gateway's word counts, for an aligned domain only.
    assert verdict_of(f"{GATEWAY}; dkim=pass header.d=example.com") == (1, True, False)
    assert verdict_of(f"{GATEWAY}; dkim=pass header.d=example.com.evil.net") == (1, False, False)
    assert verdict_of(f"{GATEWAY}; spf=pass smtp.mailfrom=a@bounce.example.com") == (1, True, False)
    assert verdict_of(f"{GATEWAY} 1; dkim=fail header.d=example.com") == (1, False, True)
    assert verdict_of(f"{GATEWAY}; dmarc=fail header.from=example.com") == (1, False, True)
    # A pass for another domain does not refute either: it says nothing about this one.
    assert verdict_of(f"{GATEWAY}; dkim=fail header.d=other.example") == (1, False, False)


def test_results_are_read_without_comments_and_in_any_case() -> None:
    [dkim, spf] = parse_results(
        "GW.Example (ticketd 1.0); DKIM=Pass (good signature) header.d=Example.COM "
        'header.s=s1; spf=softfail (not permitted) smtp.mailfrom="x@example.com"'
    )
    assert (dkim.method, dkim.result, dkim.domain, dkim.authserv_id) == (
        "dkim",
        "pass",
        "example.com",
        "gw.example",
    )
    assert (spf.method, spf.result, spf.domain) == ("spf", "softfail", "example.com")


def test_the_parsed_message_loses_forged_headers_and_says_what_is_proven(tmp_path: Path) -> None:
    trusted = f'[smtp_in]\nauthserv_id = "{OWN}"\ntrusted_authserv_ids = ["{GATEWAY}"]\n'
    config = make_config(tmp_path, extra=trusted)
    raw = customer_mail(
        sender="Ayşe <ayse@example.com>",
        headers={
            "Authentication-Results": f"{OWN}; dkim=pass header.d=example.com",
            "X-Other": "kept",
        },
    )
    message = step_believe(config, parse_message(raw))
    assert message.header("authentication-results") is None
    assert message.header("x-other") == "kept"
    assert not message.aligned_pass and message.auth.forged == 1
    raw = customer_mail(
        sender="ayse@example.com",
        headers={"Authentication-Results": f"{GATEWAY}; dkim=pass header.d=example.com"},
    )
    assert step_believe(config, parse_message(raw)).aligned_pass
    # Our own results become our header, first, and count with the rest.
    own = [AuthResult("spf", "fail", "example.com", OWN), AuthResult("dkim", "none", "", OWN)]
    message = step_believe(config, parse_message(raw), own)
    assert message.headers[0] == (
        "authentication-results",
        f"{OWN}; spf=fail smtp.mailfrom=example.com; dkim=none",
    )
    assert message.aligned_pass  # the gateway's aligned pass outweighs our SPF failure


@pytest.mark.parametrize(
    ("lines", "key"),
    [
        ('authserv_id = "two words"', "smtp_in.authserv_id"),
        ("trusted_authserv_ids = 3", "smtp_in.trusted_authserv_ids"),
        ('trusted_authserv_ids = ["ok.example", ""]', "smtp_in.trusted_authserv_ids[1]"),
        (
            'authserv_id = "mx.example"\ntrusted_authserv_ids = ["MX.example"]',
            "smtp_in.trusted_authserv_ids[0]",
        ),
    ],
)
def test_trust_keys_are_checked(tmp_path: Path, lines: str, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        make_config(tmp_path, extra=f'[smtp_in]\nlisten = "127.0.0.1:2525"\n{lines}\n')
    assert [k for k, _ in raised.value.problems] == [key]


@pytest.mark.parametrize(
    ("listen", "required"),
    [
        ("0.0.0.0:25", True),  # the listener is the MX: only a verdict proves an agent
        ("[::]:25", True),
        ("192.0.2.10:25", True),
        ("mx.destek.example.com:25", True),
        ("127.0.0.1:2525", False),  # behind a local MTA: the signed address proves the agent
        ("[::1]:2525", False),
        ("localhost:2525", False),
    ],
)
def test_agents_need_a_verdict_by_default_when_the_listener_is_the_mx(
    tmp_path: Path, listen: str, required: bool
) -> None:
    config = make_config(tmp_path, extra=f'[smtp_in]\nlisten = "{listen}"\n')
    assert config.team.agent_replies.require_authentication is required
    explicit = make_config(
        tmp_path,
        extra=f'[smtp_in]\nlisten = "{listen}"\n[agent_replies]\nrequire_authentication = true\n',
    )
    assert explicit.team.agent_replies.require_authentication


def test_a_header_claiming_our_id_refuses_the_agent_even_without_require(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    raw = customer_mail(
        sender="ayse@destek.example.com",
        headers={"Authentication-Results": f"{OWN}; dkim=pass header.d=destek.example.com"},
    )
    own_config = make_config(tmp_path, extra=f'[smtp_in]\nauthserv_id = "{OWN}"\n')
    message = step_believe(own_config, parse_message(raw))
    assert message.auth.forged == 1
    assert "claiming our own authserv-id" in (authentication_failure(message, False) or "")
    honest = step_believe(config, parse_message(customer_mail(sender="ayse@destek.example.com")))
    assert authentication_failure(honest, False) is None
    assert authentication_failure(honest, True) is not None


def test_dns_and_filter_time_past_the_parse_limit_is_warned(tmp_path: Path) -> None:
    verify = "[smtp_in]\nverify_senders = true\n"
    slow = '[dns]\ntimeout = 30\n[spam]\nrspamd_url = "http://127.0.0.1:1"\ntimeout = 40\n'
    config = make_config(tmp_path, extra=verify + slow)
    assert [k for k, _ in config.warnings] == ["limits.max_parse_seconds"]
    assert make_config(tmp_path, extra=verify + "[dns]\ntimeout = 30\n").warnings == ()
    assert make_config(tmp_path, extra=slow).warnings == ()  # not verifying: no DNS time


@pytest.mark.parametrize(
    ("listen", "verify"), [("0.0.0.0:25", True), ("192.0.2.10:25", True), ("127.0.0.1:2525", False)]
)
def test_we_verify_senders_by_default_when_the_listener_is_the_mx(
    tmp_path: Path, listen: str, verify: bool
) -> None:
    config = make_config(tmp_path, extra=f'[smtp_in]\nlisten = "{listen}"\n')
    assert config.trust.verify_senders is verify
    forced = make_config(tmp_path, extra=f'[smtp_in]\nlisten = "{listen}"\nverify_senders = true\n')
    assert forced.trust.verify_senders
