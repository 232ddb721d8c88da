"""The HTTP API takes a bearer token from the sign-in provider the app uses (a real OpenID Connect
provider on 127.0.0.1): an ID token is verified against the provider's keys, an opaque access token
is asked about at its userinfo endpoint, and the person gets the organisation and roles that the
access file gives them when they sign in to the app."""

from __future__ import annotations

import importlib.util
import time
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from kb.api import create_app
from kb.oidc import BearerVerifier, ProviderSettings
from kb.signin import Access
from kb.tokens import TokenStore
from tests.conftest import require

CLIENT_ID, CLIENT_SECRET, REDIRECT = "lighthouse", "app-secret", "http://127.0.0.1:8501/oauth2callback"
ADA = {"email": "ada@had.example.gov", "email_verified": True, "name": "Ada Lovelace"}
ACCESS = Access(
    domains={"had.example.gov": "Home Affairs Department"}, user_roles={"ada@had.example.gov": ("reviewer",)}
)


@pytest.fixture(scope="module")
def provider():
    require(importlib.util.find_spec("oidc_provider_mock") is not None, "oidc-provider-mock is not installed")
    import oidc_provider_mock

    with oidc_provider_mock.run_server_in_thread(
        user_claims=[oidc_provider_mock.User(sub="ada", claims=ADA)]
    ) as server:
        yield f"http://127.0.0.1:{server.server_port}"


def tokens_for(provider: str, sub: str) -> dict:
    """What the app receives when `sub` signs in: the code flow, answered on the provider's own form."""
    metadata = httpx.get(f"{provider}/.well-known/openid-configuration").json()
    asked = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid email profile"}
    answer = httpx.post(metadata["authorization_endpoint"], params={**asked, "state": "s"}, data={"sub": sub})
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    granted = httpx.post(
        metadata["token_endpoint"],
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    granted.raise_for_status()
    return granted.json()


def client_for(kb, tmp_path, provider, *, opaque: bool = False, access=ACCESS, **limits) -> TestClient:
    settings = ProviderSettings(f"{provider}/.well-known/openid-configuration", CLIENT_ID, opaque_tokens=opaque)
    limits = {"rate_per_minute": 10**6, "burst": 10**6} | limits
    app = create_app(kb, TokenStore(tmp_path / "tokens.json"), provider=BearerVerifier(settings, access), **limits)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def api(kb, tmp_path, provider):
    kb.sync()
    return client_for(kb, tmp_path, provider)


def whoami(api: TestClient, token: str) -> httpx.Response:
    # An organisation-only entry tells who the caller is: only its own organisation sees it.
    return api.get("/stats", headers={"Authorization": f"Bearer {token}"})


def test_an_id_token_names_the_person_with_their_organisation_and_roles(api, provider):
    granted = tokens_for(provider, "ada")
    anonymous = api.get("/stats").json()
    answer = whoami(api, granted["id_token"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["entries"] > anonymous["entries"], "a signed-in caller sees internal entries too"
    review = api.get("/review", headers={"Authorization": f"Bearer {granted['id_token']}"})
    assert review.status_code == 200, "the access file's reviewer role came with the token"


def test_an_opaque_access_token_is_taken_only_where_the_operator_says_so(api, kb, tmp_path, provider):
    """It names no audience: the provider's userinfo endpoint vouches for whose it is, not for which app."""
    granted = tokens_for(provider, "ada")
    assert whoami(api, granted["access_token"]).status_code == 401
    opaque = client_for(kb, tmp_path, provider, opaque=True)
    answer = whoami(opaque, granted["access_token"])
    assert answer.status_code == 200 and answer.json()["entries"] > api.get("/stats").json()["entries"]


def test_the_access_file_is_read_as_it_is_now_and_made_up_tokens_are_not_sent_on_without_end(kb, tmp_path, provider):
    kb.sync()
    granted = tokens_for(provider, "ada")
    files = [ACCESS]  # what access.yaml says, changed by an admin below
    client = client_for(kb, tmp_path, provider, access=lambda: files[-1], rate_per_minute=60, burst=3)
    review = lambda c: c.get("/review", headers={"Authorization": f"Bearer {granted['id_token']}"})  # noqa: E731
    assert review(client).json(), "a reviewer sees the entries waiting for review"
    files.append(Access(domains={"had.example.gov": "Home Affairs Department"}))  # the reviewer role taken away
    fresh = client_for(kb, tmp_path, provider, access=lambda: files[-1])
    assert review(fresh).json() == [], "a new verdict reads the file as it is now: no longer a reviewer"

    # Lighthouse's own tokens are never shown to the provider; unknown ones are checked at a limited rate.
    assert whoami(client, "lh_" + "x" * 43).status_code == 401
    statuses = [whoami(client, f"made-up-{n}.a.b").status_code for n in range(6)]
    assert statuses[:2] == [401, 401] and 429 in statuses, statuses


def test_a_token_with_the_wrong_audience_a_forged_signature_or_an_unknown_value_is_refused(api, provider, tmp_path, kb):
    granted = tokens_for(provider, "ada")
    header, payload, signature = granted["id_token"].split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    for token in (forged, "not-a-token-the-provider-issued", f"{header}.{payload}."):
        answer = whoami(api, token)
        assert answer.status_code == 401, token
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "not valid" in answer.json()["detail"] and "Traceback" not in answer.text

    elsewhere = BearerVerifier(ProviderSettings(f"{provider}/.well-known/openid-configuration", "another-app"), ACCESS)
    other = TestClient(
        create_app(kb, TokenStore(tmp_path / "t.json"), provider=elsewhere), raise_server_exceptions=False
    )
    assert whoami(other, granted["id_token"]).status_code == 401, "a token issued for another app is refused"


def test_an_expired_id_token_is_refused(provider):
    granted = tokens_for(provider, "ada")
    later = time.time() + 2 * 3600  # the mock's tokens live an hour; a minute of clock difference is allowed
    settings = ProviderSettings(f"{provider}/.well-known/openid-configuration", CLIENT_ID)
    assert BearerVerifier(settings, ACCESS).user_for(granted["id_token"]).email == "ada@had.example.gov"
    assert BearerVerifier(settings, ACCESS, clock=lambda: later).user_for(granted["id_token"]) is None


def test_without_a_provider_such_a_token_is_refused_and_a_provider_that_is_down_is_503(kb, tmp_path, provider):
    granted = tokens_for(provider, "ada")
    plain = TestClient(create_app(kb, TokenStore(tmp_path / "t.json")), raise_server_exceptions=False)
    assert whoami(plain, granted["id_token"]).status_code == 401

    from tests.servers import free_port

    down = BearerVerifier(
        ProviderSettings(f"http://127.0.0.1:{free_port()}/.well-known/openid-configuration", "x"), ACCESS
    )
    answer = whoami(TestClient(create_app(kb, TokenStore(tmp_path / "t.json"), provider=down)), granted["id_token"])
    assert answer.status_code == 503 and "did not answer" in answer.json()["detail"]


def test_the_provider_is_the_one_the_app_signs_in_with(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[auth]\nclient_id = "app"\nserver_metadata_url = "https://id.example/.well-known/openid-configuration"\n'
    )
    assert ProviderSettings.from_environment({}, secrets) == ProviderSettings(
        "https://id.example/.well-known/openid-configuration", "app"
    )
    assert ProviderSettings.from_environment({"KB_OIDC_AUDIENCE": "api"}, secrets).audience == "api"
    assert ProviderSettings.from_environment({}, tmp_path / "none.toml") is None
    from kb.errors import KBError

    with pytest.raises(KBError, match="set KB_OIDC_AUDIENCE"):
        ProviderSettings.from_environment({"KB_OIDC_METADATA_URL": "https://id.example/x"}, tmp_path / "none.toml")
