"""Upstream reachability in /readyz and /metrics: a TCP/TLS probe per upstream host, cached, and
what real traffic said; never a provider call, never a readiness condition."""
from __future__ import annotations

import asyncio
import datetime
import ssl

import aiohttp
import openai
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.policy.compile import PolicyError, compile_policy
from proxy.resilience.attempts import Attempt
from proxy.resilience.reachability import Reachability, Target, probe
from tests.conftest import minimal_policy
from tests.e2e.helpers import MSG, oa, readiness
from tests.resilience.test_resilience_e2e import dead_url

ROUNDS_WAIT = 600   # polls of 50 ms: a bound on a loaded machine, not a timing assertion


def policy_with_a_dead_upstream(**server) -> str:
    base = yaml.safe_load(minimal_policy())
    base["upstreams"]["down"] = {"provider": "openai", "baseUrl": dead_url(),
                                 "timeouts": {"connect": "2s", "firstByte": "5s", "total": "10s"}}
    base["routes"].insert(0, {"models": ["gone-*"], "upstream": "down"})
    base["server"].update(server)
    base["audit"] = {"sink": "stdout"}
    return yaml.safe_dump(base, sort_keys=False)


async def first_round(holder) -> None:
    for _ in range(ROUNDS_WAIT):
        if holder.reachability.rounds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no probe round finished")


async def test_readyz_reports_each_upstream_without_calling_the_provider(fake, start_proxy):
    proxy = await start_proxy(policy_with_a_dead_upstream())
    await first_round(proxy.holder)
    status, body = await readiness(proxy.url)
    # an unreachable upstream is information: this replica can still serve the others
    assert status == 200 and body["ready"] is True
    ups = body["upstreams"]
    assert set(ups) == {"openai", "anthropic", "down"}
    assert ups["openai"]["reachable"] is True and ups["openai"]["probeError"] is None
    assert ups["openai"]["connectMs"] >= 0 and ups["openai"]["checkedAt"] > 0
    assert ups["down"]["reachable"] is False and ups["down"]["probeError"] == "connect"
    assert ups["down"]["breaker"] is None and ups["down"]["recentErrors"] == 0
    # a connect and a close: the provider saw no HTTP request at all
    assert fake.state.requests == []
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/metrics") as r:
            metrics = await r.text()
    assert 'aifw_upstream_reachable{upstream="down"} 0' in metrics
    assert 'aifw_upstream_reachable{upstream="openai"} 1' in metrics
    # without the operators' token: status only
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/readyz") as r:
            assert await r.json() == {"status": "ready"}


async def test_readyz_shows_what_real_traffic_said(fake, start_proxy):
    proxy = await start_proxy(policy_with_a_dead_upstream(upstreamProbeInterval=0))
    async with oa(proxy.openai_url) as client:
        with pytest.raises(openai.APIStatusError) as err:
            await client.chat.completions.create(model="gone-1", messages=MSG)
        assert err.value.status_code == 502
        await client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    for _ in range(ROUNDS_WAIT):   # completion runs after the answer
        _, body = await readiness(proxy.url)
        if body["upstreams"]["down"]["lastError"] and body["upstreams"]["openai"]["lastOkAt"]:
            break
        await asyncio.sleep(0.05)
    ups = body["upstreams"]
    assert ups["down"]["recentErrors"] == 1 and ups["down"]["lastError"]["error"] == "connect"
    assert ups["openai"]["recentErrors"] == 0 and ups["openai"]["lastError"] is None
    # probing is off: nothing is claimed about reachability
    assert ups["down"]["reachable"] is None and proxy.holder.reachability.rounds == 0


def test_probe_interval_is_bounded(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(policy_with_a_dead_upstream(upstreamProbeInterval="200ms"))
    with pytest.raises(PolicyError, match="upstreamProbeInterval"):
        compile_policy(str(path), env={"FAKE_URL": "http://127.0.0.1:1", "FAKE_OPENAI_URL": "http://127.0.0.1:1/v1"})


def test_passive_errors_age_out_and_breaker_refusals_do_not_count():
    now = [1000.0]
    reach = Reachability(clock=lambda: now[0])
    reach.observe([Attempt("a", None, 0.0, error="timeout"), Attempt("a", None, 0.0, error="breaker_open"),
                   Attempt("b", None, 0.0, status=200)])
    assert reach.recent_errors("a") == 1 and reach.last_error["a"] == ("timeout", 1000.0)
    assert reach.last_ok == {"b": 1000.0}
    now[0] += 301
    assert reach.recent_errors("a") == 0


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


async def test_https_probe_verifies_the_certificate_like_a_client(tmp_path):
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    accepted = []

    async def accept(reader, writer):   # runs only once the TLS handshake completed
        accepted.append(True)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        ok = await probe(Target("localhost", port, True), 5.0, trusting)
        wrong_name = await probe(Target("127.0.0.1", port, True), 5.0, trusting)
        untrusted = await probe(Target("localhost", port, True), 5.0, ssl.create_default_context())
    finally:
        server.close()
        await server.wait_closed()
    assert ok.reachable and ok.error is None
    assert (wrong_name.reachable, wrong_name.error) == (False, "tls")
    assert (untrusted.reachable, untrusted.error) == (False, "tls")
    assert accepted   # the handshake completed for the trusted name


async def test_unresolvable_host_is_a_dns_error():
    result = await probe(Target("no-such-host.invalid", 443, True), 5.0)
    assert (result.reachable, result.error) == (False, "dns")
