#!/usr/bin/env python3
"""Self-test for kvserver.py and kvctl.py: starts a server in a temp dir and drives it over
real HTTPS/HTTP with the standard library only (http.client, ssl, urllib), plus cryptography
to check wrapped values and to sign client-assertion JWTs by hand.

    python3 tests/kvserver/test_kvserver.py [-v]

Prints "test_kvserver: N passed, M failed" and exits 0 if nothing failed.
"""

import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "kvserver.py")
KVCTL = os.path.join(HERE, "kvctl.py")
VAULT = "https://vault.azure.net"
HSM = "https://managedhsm.azure.net"
VERBOSE = "-v" in sys.argv


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --------------------------------------------------------------------------------------
# A tiny client and harness
# --------------------------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name.lower())

    def error_code(self):
        return self.json()["error"]["code"]

    def inner_code(self):
        return self.json()["error"].get("innererror", {}).get("code")

    def __repr__(self):
        return f"<{self.status} {self.body[:300]!r}>"


class Server:
    """A kvserver process in its own state dir."""

    def __init__(self, state_dir, *extra):
        self.dir = state_dir
        self.proc = subprocess.Popen([sys.executable, SERVER, "--state-dir", state_dir, *extra],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        path = os.path.join(state_dir, "server.json")
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("kvserver did not start: " + self.proc.stderr.read().decode())
            time.sleep(0.05)
        with open(path) as f:
            self.info = json.load(f)
        self.port = int(self.info["url"].rsplit(":", 1)[1])
        self.hport = int(self.info["imds_url"].rsplit(":", 1)[1])
        self.hsm_port = int(self.info["hsm_url"].rsplit(":", 1)[1]) if "hsm_url" in self.info else None
        self.ctx = ssl.create_default_context(cafile=self.info["ca_file"])
        self.tenant = self.info["tenant"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def request(self, method, path, body=None, headers=None, host="127.0.0.1", timeout=10, plain=False, port=None):
        if plain:
            conn = http.client.HTTPConnection("127.0.0.1", self.hport, timeout=timeout)
        else:
            conn = http.client.HTTPSConnection(host, port or self.port, context=self.ctx, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def admin(self, method, path, body=None, expect=200):
        r = self.request(method, path, body if body is not None else ({} if method != "GET" else None),
                         {"X-Admin-Token": self.info["admin_token"]})
        assert r.status == expect, f"admin {method} {path}: {r}"
        return r.json()

    # -- Key Vault-style calls --------------------------------------------------------------

    def token(self, form, tenant=None):
        return self.request("POST", f"/{tenant or self.tenant}/oauth2/v2.0/token", urlencode(form),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def secret_token(self, cid, secret, resource=VAULT):
        r = self.token({"grant_type": "client_credentials", "client_id": cid, "client_secret": secret,
                        "scope": resource + "/.default"})
        assert r.status == 200, r
        return r.json()["access_token"]

    def get_key(self, tok, name, version="", api="7.4", host="127.0.0.1"):
        path = f"/keys/{name}" + (f"/{version}" if version else "") + (f"?api-version={api}" if api else "")
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return self.request("GET", path, headers=headers, host=host)

    def crypto(self, tok, op, name, version, alg, value, api="7.4", timeout=10):
        body = {"alg": alg, "value": value if isinstance(value, str) else b64url(value)}
        return self.request("POST", f"/keys/{name}/{version}/{op}?api-version={api}", body,
                            {"Authorization": f"Bearer {tok}"}, timeout=timeout)

    def create_key(self, name, **spec):
        return self.admin("POST", "/admin/keys", dict(spec, name=name))

    def kv(self, method, path, tok, body=None, api="7.6", hsm=False):
        """A Key Vault REST call on the vault host (or the Managed HSM host)."""
        sep = "&" if "?" in path else "?"
        return self.request(method, f"{path}{sep}api-version={api}" if api else path, body,
                            {"Authorization": f"Bearer {tok}"} if tok else {},
                            port=self.hsm_port if hsm else None)


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expect(resp, status, code=None, inner=None):
    assert resp.status == status, f"expected {status}, got {resp}"
    if code is not None:
        assert resp.error_code() == code, f"expected code {code}, got {resp}"
    if inner is not None:
        assert resp.inner_code() == inner, f"expected innererror {inner}, got {resp}"
    return resp


def entra_expect(resp, status, error, aadsts):
    assert resp.status == status, f"expected {status}, got {resp}"
    j = resp.json()
    assert j["error"] == error and j["error_codes"] == [aadsts], f"expected {error}/{aadsts}, got {resp}"
    assert j["error_description"].startswith(f"AADSTS{aadsts}:"), j
    for k in ("timestamp", "trace_id", "correlation_id", "error_uri"):
        assert k in j, f"{k} missing in {j}"


# --------------------------------------------------------------------------------------
# Fixtures shared by the tests (set up once, in order)
# --------------------------------------------------------------------------------------


class F:
    srv: Server = None
    tok: str = None  # app1's vault token
    hsm_tok: str = None
    keys = {}  # name -> admin create result


def setup(srv):
    F.srv = srv
    for name, spec in {"rsa2048": {}, "rsa3072": {"size": 3072}, "hsm1": {"kty": "oct-HSM"},
                       "rsahsm": {"kty": "RSA-HSM"}}.items():
        F.keys[name] = srv.create_key(name, **spec)
    srv.admin("POST", "/admin/clients", {"client_id": "app1", "secret": "s3cret-app1"})
    srv.admin("POST", "/admin/grants", {"client_id": "app1", "key": "*", "permissions": ["get", "wrapKey",
                                                                                        "unwrapKey"]})
    F.tok = srv.secret_token("app1", "s3cret-app1")
    F.hsm_tok = srv.secret_token("app1", "s3cret-app1", HSM)


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


@test
def server_json_and_tls():
    info = F.srv.info
    for k in ("url", "imds_url", "ca_file", "pid", "tenant", "admin_token", "identity_header"):
        assert k in info, k
    assert info["url"].startswith("https://127.0.0.1:") and info["imds_url"].startswith("http://127.0.0.1:")
    assert info["pid"] == F.srv.proc.pid
    # the certificate verifies for both 127.0.0.1 and localhost; an untrusting client fails
    expect(F.srv.get_key(F.tok, "rsa2048", host="localhost"), 200)
    try:
        http.client.HTTPSConnection("127.0.0.1", F.srv.port, context=ssl.create_default_context(),
                                    timeout=5).request("GET", "/")
        raise AssertionError("TLS verified without the test CA")
    except ssl.SSLCertVerificationError:
        pass
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(F.srv.info["ca_file"])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
        http.client.HTTPSConnection("127.0.0.1", F.srv.port, context=old, timeout=5).request("GET", "/")
        raise AssertionError("TLS 1.1 was accepted")
    except (ssl.SSLError, OSError, ValueError):
        pass


@test
def challenge_401_vault_and_hsm():
    r = expect(F.srv.get_key(None, "rsa2048"), 401, "Unauthorized")
    assert r.json() == {"error": {"code": "Unauthorized",
                                  "message": "AKV10000: Request is missing a Bearer or PoP token."}}, r
    want = f'Bearer authorization="https://127.0.0.1:{F.srv.port}/{F.srv.tenant}", resource="{VAULT}"'
    assert r.header("WWW-Authenticate") == want, r.header("WWW-Authenticate")
    r = expect(F.srv.crypto("", "unwrapkey", "hsm1", F.keys["hsm1"]["version"], "A256KW", b"x" * 40), 401)
    assert r.header("WWW-Authenticate").endswith(f'resource="{HSM}"'), r.headers
    # an unknown token and a token for the wrong audience get 401 with the challenge again
    r = expect(F.srv.get_key("not-a-token", "rsa2048"), 401, "Unauthorized")
    assert r.header("WWW-Authenticate") == want
    r = expect(F.srv.get_key(F.tok, "hsm1"), 401, "Unauthorized")
    assert "AKV10022" in r.json()["error"]["message"] and r.header("WWW-Authenticate").endswith(f'"{HSM}"')
    expect(F.srv.get_key(F.hsm_tok, "rsa2048"), 401, "Unauthorized")


@test
def api_version_required_and_checked():
    expect(F.srv.get_key(F.tok, "rsa2048", api=None), 400, "BadParameter")
    r = expect(F.srv.get_key(F.tok, "rsa2048", api="7.9"), 400, "BadParameter")
    assert "(7.9) is not recognized" in r.json()["error"]["message"]
    for api in ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"):
        r = expect(F.srv.get_key(F.tok, "rsa2048", api=api), 200)
        assert ("exportable" in r.json()["attributes"]) == (api not in ("7.0", "7.1", "7.2")), (api, r)


@test
def client_secret_token():
    r = F.srv.token({"grant_type": "client_credentials", "client_id": "app1", "client_secret": "s3cret-app1",
                     "scope": VAULT + "/.default"})
    j = expect(r, 200).json()
    assert set(j) == {"token_type", "expires_in", "ext_expires_in", "access_token"}, j
    assert j["token_type"] == "Bearer" and j["expires_in"] == 3600 and j["ext_expires_in"] == 3600
    good = {"grant_type": "client_credentials", "client_id": "app1", "scope": VAULT + "/.default"}
    entra_expect(F.srv.token(dict(good, client_secret="wrong")), 401, "invalid_client", 7000215)
    entra_expect(F.srv.token(dict(good, client_id="nobody", client_secret="x")), 400, "unauthorized_client", 700016)
    entra_expect(F.srv.token(dict(good, client_secret="s3cret-app1", scope=VAULT)), 400, "invalid_scope", 1002012)
    entra_expect(F.srv.token(dict(good, client_secret="s3cret-app1"), tenant=str(uuid.uuid4())), 400,
                 "invalid_request", 90002)
    entra_expect(F.srv.token(good), 401, "invalid_client", 7000218)


def make_cert(cn="kvserver-test-client"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    t = time.time()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.fromtimestamp(t - 3600, datetime.timezone.utc))
            .not_valid_after(datetime.datetime.fromtimestamp(t + 86400, datetime.timezone.utc))
            .sign(key, hashes.SHA256()))
    return key, cert


def make_assertion(key, cert, claims, alg="PS256", thumb="x5t#S256"):
    """A client assertion JWT signed by hand, as Entra documents it."""
    der = cert.public_bytes(serialization.Encoding.DER)
    header = {"alg": alg, "typ": "JWT",
              thumb: b64url((hashlib.sha256 if thumb == "x5t#S256" else hashlib.sha1)(der).digest())}
    signing_input = (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())).encode()
    pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if alg == "PS256"
           else padding.PKCS1v15())
    return signing_input.decode() + "." + b64url(key.sign(signing_input, pad, hashes.SHA256()))


@test
def client_assertion_token():
    srv = F.srv
    key, cert = make_cert()
    srv.admin("POST", "/admin/clients", {"client_id": "certapp", "certificate_pem":
                                         cert.public_bytes(serialization.Encoding.PEM).decode()})
    srv.admin("POST", "/admin/grants", {"client_id": "certapp", "key": "rsa2048", "permissions": ["get"]})
    aud = f"https://127.0.0.1:{srv.port}/{srv.tenant}/oauth2/v2.0/token"

    def claims(**over):
        t = int(time.time())
        return dict({"aud": aud, "iss": "certapp", "sub": "certapp", "jti": str(uuid.uuid4()), "nbf": t,
                     "iat": t, "exp": t + 600}, **over)

    def ask(assertion):
        return srv.token({"grant_type": "client_credentials", "client_id": "certapp", "scope": VAULT + "/.default",
                          "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                          "client_assertion": assertion})

    a = make_assertion(key, cert, claims())
    tok = expect(ask(a), 200).json()["access_token"]
    expect(srv.get_key(tok, "rsa2048"), 200)
    expect(srv.get_key(tok, "rsa3072"), 403, "Forbidden", "ForbiddenByPolicy")  # no grant there
    expect(ask(a), 200)  # MSAL reuses assertions, so a repeated jti is accepted by default ...
    srv.admin("PATCH", "/admin/vault", {"reject_assertion_replay": True})
    b = make_assertion(key, cert, claims())
    expect(ask(b), 200)
    entra_expect(ask(b), 401, "invalid_client", 50027)  # ... unless replays are to be refused
    srv.admin("PATCH", "/admin/vault", {"reject_assertion_replay": False})
    entra_expect(ask(make_assertion(key, cert, claims(jti=None))), 401, "invalid_client", 50027)
    expect(ask(make_assertion(key, cert, claims(), alg="RS256", thumb="x5t")), 200)  # legacy form
    entra_expect(ask(make_assertion(key, cert, claims(aud="https://login.microsoftonline.com/x/oauth2/v2.0/token"))),
                 401, "invalid_client", 700023)
    entra_expect(ask(make_assertion(key, cert, claims(iss="someone-else"))), 401, "invalid_client", 700021)
    entra_expect(ask(make_assertion(key, cert, claims(exp=int(time.time()) - 3600))), 401, "invalid_client", 700024)
    other_key, other_cert = make_cert("unregistered")
    entra_expect(ask(make_assertion(other_key, other_cert, claims())), 401, "invalid_client", 700027)
    h, c, s = make_assertion(key, cert, claims()).split(".")
    entra_expect(ask(f"{h}.{c}.{b64url(bytes(256))}"), 401, "invalid_client", 700027)
    entra_expect(ask("not-a-jwt"), 401, "invalid_client", 50027)


@test
def workload_identity_federated_token():
    srv = F.srv
    fed = "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token." + uuid.uuid4().hex
    srv.admin("POST", "/admin/clients", {"client_id": "wi-app", "federated_token": fed})
    form = {"grant_type": "client_credentials", "client_id": "wi-app", "scope": VAULT + "/.default",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    expect(srv.token(dict(form, client_assertion=fed)), 200)
    entra_expect(srv.token(dict(form, client_assertion=fed + "x")), 401, "invalid_client", 70021)


@test
def imds_and_app_service_tokens():
    srv = F.srv
    srv.admin("POST", "/admin/clients", {"client_id": "mi-system", "system_assigned": True})
    srv.admin("POST", "/admin/clients", {"client_id": "mi-user", "managed_identity": True})
    srv.admin("POST", "/admin/grants", {"client_id": "mi-user", "key": "*", "permissions": ["get", "unwrapKey"]})
    q = "/metadata/identity/oauth2/token?" + urlencode({"api-version": "2018-02-01", "resource": VAULT})
    r = expect(srv.request("GET", q, plain=True), 400)
    assert r.json() == {"error": "bad_request_102", "error_description": "Required metadata header not specified"}
    j = expect(srv.request("GET", q, headers={"Metadata": "true"}, plain=True), 200).json()
    for k in ("access_token", "expires_in", "expires_on", "not_before", "resource", "token_type", "client_id"):
        assert k in j, (k, j)
    assert j["client_id"] == "mi-system" and j["token_type"] == "Bearer" and j["resource"] == VAULT
    assert isinstance(j["expires_in"], str) and isinstance(j["expires_on"], str) and int(j["expires_on"]) > time.time()
    j = expect(srv.request("GET", q + "&client_id=mi-user", headers={"Metadata": "true"}, plain=True), 200).json()
    assert j["client_id"] == "mi-user"
    expect(srv.get_key(j["access_token"], "rsa2048"), 200)
    r = expect(srv.request("GET", q + "&client_id=app1", headers={"Metadata": "true"}, plain=True), 400)
    assert r.json()["error_description"] == "Identity not found"
    # App Service flavour
    q = "/msi/token?" + urlencode({"api-version": "2019-08-01", "resource": HSM, "client_id": "mi-user"})
    expect(srv.request("GET", q, plain=True), 400)
    expect(srv.request("GET", q, headers={"X-IDENTITY-HEADER": "wrong"}, plain=True), 401)
    j = expect(srv.request("GET", q, headers={"X-IDENTITY-HEADER": srv.info["identity_header"]}, plain=True),
               200).json()
    assert set(j) >= {"access_token", "expires_on", "resource", "token_type", "client_id"}, j
    assert j["resource"] == HSM and j["client_id"] == "mi-user"
    expect(srv.get_key(j["access_token"], "hsm1"), 200)
    expect(srv.get_key(j["access_token"], "rsa2048"), 401)  # managedhsm token on a vault key


@test
def get_key_bundle():
    srv, k = F.srv, F.keys["rsa2048"]
    j = expect(srv.get_key(F.tok, "rsa2048", k["version"]), 200).json()
    assert set(j) == {"key", "attributes"}, j
    assert j["key"]["kid"] == f"https://127.0.0.1:{srv.port}/keys/rsa2048/{k['version']}"
    assert j["key"]["kty"] == "RSA" and "wrapKey" in j["key"]["key_ops"] and j["key"]["e"] == "AQAB"
    assert len(unb64url(j["key"]["n"])) == 256
    a = j["attributes"]
    assert a["enabled"] is True and isinstance(a["created"], int) and isinstance(a["updated"], int), a
    assert a["recoveryLevel"] == "Recoverable+Purgeable" and a["recoverableDays"] == 90, a
    assert "nbf" not in a and "exp" not in a
    # latest version, case-insensitive names, the Host the client used, Managed HSM keys
    assert expect(srv.get_key(F.tok, "RSA2048"), 200).json()["key"]["kid"] == j["key"]["kid"]
    j2 = expect(srv.get_key(F.tok, "rsa2048", host="localhost"), 200).json()
    assert j2["key"]["kid"].startswith(f"https://localhost:{srv.port}/keys/rsa2048/")
    h = expect(srv.get_key(F.hsm_tok, "hsm1"), 200).json()
    assert h["key"]["kty"] == "oct-HSM" and "n" not in h["key"] and "k" not in h["key"], h
    assert expect(srv.get_key(F.tok, "rsahsm"), 200).json()["key"]["kty"] == "RSA-HSM"
    expect(srv.get_key(F.tok, "rsa2048", uuid.uuid4().hex), 404, "KeyNotFound")


def rsa_public(jwk):
    n, e = (int.from_bytes(unb64url(jwk[x]), "big") for x in ("n", "e"))
    return rsa.RSAPublicNumbers(e, n).public_key()


@test
def wrap_unwrap_rsa_oaep_256():
    srv = F.srv
    for name, nbytes in (("rsa2048", 256), ("rsa3072", 384)):
        v = F.keys[name]["version"]
        cek = os.urandom(32)
        r = expect(srv.crypto(F.tok, "wrapkey", name, v, "RSA-OAEP-256", cek), 200).json()
        assert r["kid"].endswith(f"/keys/{name}/{v}") and "=" not in r["value"]
        assert len(unb64url(r["value"])) == nbytes
        back = expect(srv.crypto(F.tok, "unwrapkey", name, v, "RSA-OAEP-256", r["value"]), 200).json()
        assert unb64url(back["value"]) == cek
        # wrapped locally with the public key (OAEP, SHA-256, MGF1-SHA-256): the server unwraps it
        pub = rsa_public(expect(srv.get_key(F.tok, name, v), 200).json()["key"])
        local = pub.encrypt(cek, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                                              label=None))
        assert unb64url(expect(srv.crypto(F.tok, "unwrapkey", name, v, "RSA-OAEP-256", local),
                               200).json()["value"]) == cek
    v = F.keys["rsa2048"]["version"]
    for alg in ("RSA-OAEP", "RSA1_5"):
        w = expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, alg, b"k" * 32), 200).json()["value"]
        assert unb64url(expect(srv.crypto(F.tok, "unwrapkey", "rsa2048", v, alg, w), 200).json()["value"]) == b"k" * 32
    # versionless wrap uses the latest version
    r = srv.request("POST", "/keys/rsa2048/wrapkey?api-version=7.4", {"alg": "RSA-OAEP-256", "value": b64url(b"x" * 32)},
                    {"Authorization": f"Bearer {F.tok}"})
    assert expect(r, 200).json()["kid"].endswith(v)
    expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, "A256KW", b"k" * 32), 400, "BadParameter")
    expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, "RSA-OAEP-256", "not*base64"), 400, "BadParameter")
    expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, "RSA-OAEP-256", b"x" * 200), 400, "BadParameter")
    expect(srv.crypto(F.tok, "unwrapkey", "rsa2048", v, "RSA-OAEP-256", b"x" * 256), 400, "BadParameter")
    r = srv.request("POST", f"/keys/rsa2048/{v}/wrapkey?api-version=7.4", "{nope",
                    {"Authorization": f"Bearer {F.tok}", "Content-Type": "application/json"})
    expect(r, 400, "BadParameter")


@test
def wrap_unwrap_a256kw_oct_hsm():
    srv, v = F.srv, F.keys["hsm1"]["version"]
    cek = os.urandom(32)
    r = expect(srv.crypto(F.hsm_tok, "wrapkey", "hsm1", v, "A256KW", cek), 200).json()
    assert len(unb64url(r["value"])) == 40  # RFC 3394: one extra 64-bit block
    assert unb64url(expect(srv.crypto(F.hsm_tok, "unwrapkey", "hsm1", v, "A256KW", r["value"]),
                           200).json()["value"]) == cek
    expect(srv.crypto(F.hsm_tok, "unwrapkey", "hsm1", v, "A256KW", os.urandom(40)), 400, "BadParameter")
    expect(srv.crypto(F.hsm_tok, "wrapkey", "hsm1", v, "RSA-OAEP-256", cek), 400, "BadParameter")
    expect(srv.crypto(F.hsm_tok, "wrapkey", "hsm1", v, "A256KW", b"short"), 400, "BadParameter")


@test
def disabled_key():
    srv = F.srv
    k = srv.create_key("dis1")
    w = expect(srv.crypto(F.tok, "wrapkey", "dis1", k["version"], "RSA-OAEP-256", b"d" * 32), 200).json()["value"]
    srv.admin("PATCH", f"/admin/keys/dis1/{k['version']}", {"enabled": False})
    j = expect(srv.get_key(F.tok, "dis1"), 200).json()
    assert j["attributes"]["enabled"] is False
    r = expect(srv.crypto(F.tok, "unwrapkey", "dis1", k["version"], "RSA-OAEP-256", w), 403, "Forbidden", "KeyDisabled")
    assert r.json()["error"]["message"] == "Operation unwrapKey is not allowed on a disabled key."
    r = expect(srv.crypto(F.tok, "wrapkey", "dis1", k["version"], "RSA-OAEP-256", b"d" * 32), 403, "Forbidden",
               "KeyDisabled")
    assert r.json()["error"]["message"] == "Operation wrapKey is not allowed on a disabled key."
    srv.admin("PATCH", "/admin/vault", {"disabled_get": "forbidden"})
    expect(srv.get_key(F.tok, "dis1"), 403, "Forbidden", "KeyDisabled")
    srv.admin("PATCH", "/admin/vault", {"disabled_get": "ok"})
    srv.admin("PATCH", "/admin/keys/dis1/latest", {"enabled": True})
    expect(srv.crypto(F.tok, "unwrapkey", "dis1", k["version"], "RSA-OAEP-256", w), 200)


@test
def expired_and_not_yet_valid_keys():
    srv, t = F.srv, int(time.time())
    for name, attrs, inner in (("exp1", {"exp": t - 10}, "KeyExpired"), ("nbf1", {"nbf": t + 3600}, "KeyNotYetValid")):
        k = srv.create_key(name, **attrs)
        j = expect(srv.get_key(F.tok, name), 200).json()
        assert j["attributes"].get("exp" if "exp" in attrs else "nbf") == list(attrs.values())[0]
        expect(srv.crypto(F.tok, "wrapkey", name, k["version"], "RSA-OAEP-256", b"e" * 32), 403, "Forbidden", inner)
        local = rsa_public(j["key"]).encrypt(b"e" * 32, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                                     algorithm=hashes.SHA256(), label=None))
        r = expect(srv.crypto(F.tok, "unwrapkey", name, k["version"], "RSA-OAEP-256", local), 200)
        assert unb64url(r.json()["value"]) == b"e" * 32
    # clearing exp makes wrap work again
    srv.admin("PATCH", "/admin/keys/exp1/latest", {"exp": None})
    expect(srv.crypto(F.tok, "wrapkey", "exp1", "", "RSA-OAEP-256", b"e" * 32), 200)


@test
def key_ops_restrict_operations():
    srv = F.srv
    k = srv.create_key("unwraponly", key_ops=["unwrapKey"])
    expect(srv.crypto(F.tok, "wrapkey", "unwraponly", k["version"], "RSA-OAEP-256", b"o" * 32), 403, "Forbidden")


@test
def versions_and_rotation():
    srv = F.srv
    k1 = srv.create_key("rot1")
    w1 = expect(srv.crypto(F.tok, "wrapkey", "rot1", k1["version"], "RSA-OAEP-256", b"r" * 32), 200).json()["value"]
    k2 = srv.admin("POST", "/admin/keys/rot1/versions", {})
    assert k2["version"] != k1["version"] and len(k2["version"]) == 32
    assert expect(srv.get_key(F.tok, "rot1"), 200).json()["key"]["kid"].endswith(k2["version"])
    expect(srv.crypto(F.tok, "unwrapkey", "rot1", k1["version"], "RSA-OAEP-256", w1), 200)  # old version still works
    expect(srv.crypto(F.tok, "unwrapkey", "rot1", k2["version"], "RSA-OAEP-256", w1), 400, "BadParameter")


@test
def delete_recover_purge():
    srv = F.srv
    k = srv.create_key("del1")
    srv.admin("DELETE", "/admin/keys/del1")
    r = expect(srv.get_key(F.tok, "del1"), 404, "KeyNotFound")
    assert r.json()["error"]["message"].startswith("A key with (name/id) del1 was not found in this key vault.")
    expect(srv.crypto(F.tok, "unwrapkey", "del1", k["version"], "RSA-OAEP-256", b"x" * 256), 404, "KeyNotFound")
    srv.admin("POST", "/admin/keys", {"name": "del1"}, expect=409)  # name reserved while soft-deleted
    srv.admin("POST", "/admin/keys/del1/recover")
    expect(srv.get_key(F.tok, "del1", k["version"]), 200)
    # purge protection forbids purging; without it the key can be purged and is gone for good
    srv.admin("PATCH", "/admin/vault", {"purge_protection": True})
    srv.admin("DELETE", "/admin/keys/del1")
    srv.admin("DELETE", "/admin/deletedkeys/del1", expect=403)
    srv.admin("PATCH", "/admin/vault", {"purge_protection": False})
    srv.admin("DELETE", "/admin/deletedkeys/del1")
    srv.admin("POST", "/admin/keys/del1/recover", expect=404)
    # soft delete off: delete is final
    srv.admin("PATCH", "/admin/vault", {"soft_delete": False})
    srv.create_key("del2")
    assert srv.admin("DELETE", "/admin/keys/del2")["recoverable"] is False
    srv.admin("POST", "/admin/keys/del2/recover", expect=404)
    srv.admin("PATCH", "/admin/vault", {"soft_delete": True})


@test
def recovery_level_from_vault_properties():
    srv = F.srv
    cases = [({"soft_delete": True, "purge_protection": True, "retention_days": 90}, "Recoverable", 90),
             ({"soft_delete": True, "purge_protection": False}, "Recoverable+Purgeable", 90),
             ({"soft_delete": False, "purge_protection": False}, "Purgeable", None),
             ({"soft_delete": True, "purge_protection": True, "retention_days": 30}, "CustomizedRecoverable", 30),
             ({"soft_delete": True, "purge_protection": False, "retention_days": 7}, "CustomizedRecoverable+Purgeable", 7)]
    try:
        for props, level, days in cases:
            assert srv.admin("PATCH", "/admin/vault", props)["recovery_level"] == level
            a = expect(srv.get_key(F.tok, "rsa2048"), 200).json()["attributes"]
            assert a["recoveryLevel"] == level and a.get("recoverableDays") == days, (props, a)
    finally:
        srv.admin("PATCH", "/admin/vault", {"soft_delete": True, "purge_protection": False, "retention_days": 90})


@test
def permissions_policy_and_rbac():
    srv = F.srv
    srv.admin("POST", "/admin/clients", {"client_id": "app2", "secret": "s2"})
    srv.admin("POST", "/admin/grants", {"client_id": "app2", "key": "rsa2048", "permissions": ["get", "unwrapKey"]})
    tok = srv.secret_token("app2", "s2")
    v = F.keys["rsa2048"]["version"]
    expect(srv.get_key(tok, "rsa2048"), 200)
    r = expect(srv.crypto(tok, "wrapkey", "rsa2048", v, "RSA-OAEP-256", b"p" * 32), 403, "Forbidden",
               "ForbiddenByPolicy")
    msg = r.json()["error"]["message"]
    assert "does not have keys wrapKey permission on key vault" in msg and "appid=app2;" in msg, msg
    srv.admin("POST", "/admin/grants/revoke", {"client_id": "app2", "key": "rsa2048", "permissions": ["get"]})
    expect(srv.get_key(tok, "rsa2048"), 403, "Forbidden", "ForbiddenByPolicy")
    # a per-key revoke cannot narrow a vault-wide grant: refused rather than silently ignored
    srv.admin("POST", "/admin/grants/revoke", {"client_id": "app1", "key": "rsa2048", "permissions": ["get"]},
              expect=409)
    srv.admin("PATCH", "/admin/vault", {"policy_denied_code": "AccessDenied"})
    expect(srv.get_key(tok, "rsa2048"), 403, "Forbidden", "AccessDenied")
    srv.admin("PATCH", "/admin/vault", {"policy_denied_code": "ForbiddenByPolicy", "rbac": True})
    r = expect(srv.get_key(tok, "rsa2048"), 403, "Forbidden", "ForbiddenByRbac")
    assert "Action: 'Microsoft.KeyVault/vaults/keys/read'" in r.json()["error"]["message"]
    srv.admin("PATCH", "/admin/vault", {"rbac": False})
    # Managed HSM keys always answer RBAC-style (no access policies there)
    hsm_tok = srv.secret_token("app2", "s2", HSM)
    expect(srv.get_key(hsm_tok, "hsm1"), 403, "Forbidden", "ForbiddenByRbac")


@test
def token_revocation_and_expiry():
    srv = F.srv
    srv.admin("POST", "/admin/clients", {"client_id": "app3", "secret": "s3"})
    srv.admin("POST", "/admin/grants", {"client_id": "app3", "key": "*", "permissions": ["get"]})
    tok = srv.secret_token("app3", "s3")
    expect(srv.get_key(tok, "rsa2048"), 200)
    assert srv.admin("POST", "/admin/clients/app3/revoke-tokens")["revoked"] == 1
    r = expect(srv.get_key(tok, "rsa2048"), 401, "Unauthorized")
    assert r.header("WWW-Authenticate").startswith("Bearer authorization=")
    short = srv.admin("POST", "/admin/tokens", {"client_id": "app3", "lifetime": 1})["access_token"]
    expect(srv.get_key(short, "rsa2048"), 200)
    srv.admin("PATCH", "/admin/vault", {"token_lifetime": 1})
    j = expect(srv.token({"grant_type": "client_credentials", "client_id": "app3", "client_secret": "s3",
                          "scope": VAULT + "/.default"}), 200).json()
    assert j["expires_in"] == 1
    srv.admin("PATCH", "/admin/vault", {"token_lifetime": 3600})
    time.sleep(1.2)
    expect(srv.get_key(short, "rsa2048"), 401, "Unauthorized")
    expect(srv.get_key(j["access_token"], "rsa2048"), 401, "Unauthorized")
    srv.admin("POST", "/admin/clients", {"client_id": "app3", "enabled": False})
    entra_expect(srv.token({"grant_type": "client_credentials", "client_id": "app3", "client_secret": "s3",
                            "scope": VAULT + "/.default"}), 400, "unauthorized_client", 7000112)


@test
def faults_throttling_and_errors():
    srv, v = F.srv, F.keys["rsa2048"]["version"]
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "status": 429, "retry_after": 2, "count": 2})
    for _ in range(2):
        r = expect(srv.get_key(F.tok, "rsa2048"), 429)
        assert r.header("Retry-After") == "2" and r.error_code() == "Throttled"
    expect(srv.get_key(F.tok, "rsa2048"), 200)  # count used up
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "status": 429})
    r = expect(srv.get_key(F.tok, "rsa2048"), 429)
    assert r.header("Retry-After") is None
    for status in (500, 503):
        srv.admin("POST", "/admin/faults", {"pattern": "/unwrapkey$", "status": status})
        expect(srv.crypto(F.tok, "unwrapkey", "rsa2048", v, "RSA-OAEP-256", b"x" * 256), status)
    srv.admin("POST", "/admin/faults", {"pattern": "/oauth2/v2.0/token$", "status": 503, "seconds": 0.4})
    expect(srv.token({"grant_type": "client_credentials", "client_id": "app1", "client_secret": "s3cret-app1",
                      "scope": VAULT + "/.default"}), 503)
    time.sleep(0.5)
    srv.secret_token("app1", "s3cret-app1")
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa3072", "status": 503, "probability": 0.5})
    seen = {srv.get_key(F.tok, "rsa3072").status for _ in range(30)}
    assert seen == {200, 503}, seen
    srv.admin("DELETE", "/admin/faults")
    expect(srv.get_key(F.tok, "rsa3072"), 200)
    # faults work on the managed-identity port too
    srv.admin("POST", "/admin/faults", {"pattern": "^/metadata/", "status": 429, "retry_after": "1"})
    q = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=" + VAULT
    assert srv.request("GET", q, headers={"Metadata": "true"}, plain=True).status == 429


@test
def faults_drop_latency_hang():
    srv = F.srv
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "drop": True})
    try:
        srv.get_key(F.tok, "rsa2048")
        raise AssertionError("the connection was not dropped")
    except (http.client.RemoteDisconnected, ConnectionError, ssl.SSLError, http.client.BadStatusLine):
        pass
    expect(srv.get_key(F.tok, "rsa2048"), 200)
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "latency_ms": 300})
    t = time.monotonic()
    expect(srv.get_key(F.tok, "rsa2048"), 200)
    assert time.monotonic() - t >= 0.3
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "latency_ms": 200, "status": 503})
    t = time.monotonic()
    expect(srv.get_key(F.tok, "rsa2048"), 503)
    assert time.monotonic() - t >= 0.2
    srv.admin("POST", "/admin/faults", {"pattern": "/keys/rsa2048", "hang": True})
    t = time.monotonic()
    try:
        srv.request("GET", "/keys/rsa2048?api-version=7.4", headers={"Authorization": f"Bearer {F.tok}"}, timeout=1)
        raise AssertionError("the request did not hang")
    except (socket.timeout, TimeoutError):
        pass
    assert 0.9 <= time.monotonic() - t < 5
    expect(srv.get_key(F.tok, "rsa2048"), 200)


@test
def hostile_raw_responses():
    srv = F.srv
    adm = {"X-Admin-Token": srv.info["admin_token"]}
    expect(srv.request("POST", "/admin/raw", {"pattern": "/keys/rsa2048$", "preset": "invalid-json"}, adm), 200)
    r = srv.get_key(F.tok, "rsa2048")
    assert r.status == 200 and r.body == b'{"key": {"kid": "https://', r
    expect(srv.request("POST", "/admin/raw", {"pattern": "/keys/rsa2048$", "preset": "redirect"}, adm), 200)
    r = srv.get_key(F.tok, "rsa2048")
    assert r.status == 302 and r.header("Location"), r
    expect(srv.request("POST", "/admin/raw", {"pattern": "/unwrapkey$", "preset": "huge", "size": 2 << 20}, adm), 200)
    r = srv.crypto(F.tok, "unwrapkey", "rsa2048", F.keys["rsa2048"]["version"], "RSA-OAEP-256", b"x" * 256)
    assert r.status == 200 and len(r.body) > 2 << 20
    expect(srv.request("POST", "/admin/raw", {"pattern": "/unwrapkey$", "preset": "wrong-key-size"}, adm), 200)
    r = srv.crypto(F.tok, "unwrapkey", "rsa2048", F.keys["rsa2048"]["version"], "RSA-OAEP-256", b"x" * 256)
    assert len(unb64url(r.json()["value"])) == 31
    expect(srv.request("POST", "/admin/raw", {"pattern": "/keys/rsa2048$", "status": 200, "body": "{}",
                                              "headers": [["X-Odd", "1"]]}, adm), 200)
    r = srv.get_key(F.tok, "rsa2048")
    assert r.body == b"{}" and r.header("X-Odd") == "1"
    expect(srv.get_key(F.tok, "rsa2048"), 200)  # one-shot rules are gone


@test
def stats_count_operations():
    srv, v = F.srv, F.keys["rsa2048"]["version"]
    srv.admin("POST", "/admin/stats/reset")
    for _ in range(3):
        expect(srv.get_key(F.tok, "rsa2048"), 200)
    w = expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, "RSA-OAEP-256", b"s" * 32), 200).json()["value"]
    for _ in range(2):
        expect(srv.crypto(F.tok, "unwrapkey", "rsa2048", v, "RSA-OAEP-256", w), 200)
    expect(srv.get_key(None, "rsa2048"), 401)
    srv.secret_token("app1", "s3cret-app1")
    s = srv.admin("GET", "/admin/stats")
    assert s["ops"] == {"get_key": 4, "wrap_key": 1, "unwrap_key": 2, "token": 1}, s
    assert s["by_status"]["get_key"] == {"200": 3, "401": 1}, s
    assert s["by_client"]["app1"] == 7 and s["total"] == 8, s


@test
def concurrency_and_keepalive():
    srv, v = F.srv, F.keys["rsa2048"]["version"]
    w = expect(srv.crypto(F.tok, "wrapkey", "rsa2048", v, "RSA-OAEP-256", b"c" * 32), 200).json()["value"]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda _: srv.crypto(F.tok, "unwrapkey", "rsa2048", v, "RSA-OAEP-256", w).status,
                                range(64)))
    assert results == [200] * 64, results
    srv.admin("POST", "/admin/stats/reset")
    conn = http.client.HTTPSConnection("127.0.0.1", srv.port, context=srv.ctx, timeout=10)
    for _ in range(3):  # one TLS connection, several requests
        conn.request("GET", "/keys/rsa2048?api-version=7.4", headers={"Authorization": f"Bearer {F.tok}"})
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    conn.close()
    expect(srv.get_key(F.tok, "rsa2048"), 200)  # a connection of its own
    s = srv.admin("GET", "/admin/stats")  # admin connections are not counted
    assert s["ops"]["get_key"] == 4 and s["connections"] == {"https": 2}, s


@test
def openid_metadata_for_sdks():
    srv = F.srv
    j = expect(srv.request("GET", f"/{srv.tenant}/v2.0/.well-known/openid-configuration"), 200).json()
    assert j["token_endpoint"] == srv.info["token_endpoint"], j
    j = expect(srv.request("GET", "/common/discovery/instance?api-version=1.1"), 200).json()
    assert j["tenant_discovery_endpoint"].endswith("/v2.0/.well-known/openid-configuration")


@test
def admin_api_requires_token():
    srv = F.srv
    expect(srv.request("GET", "/admin/state"), 401)
    expect(srv.request("GET", "/admin/state", headers={"X-Admin-Token": "nope"}), 401)
    st = srv.admin("GET", "/admin/state")
    assert any(k["name"] == "rsa2048" for k in st["keys"])
    assert "s3cret-app1" not in json.dumps(st)


@test
def kvctl_cli():
    d = F.srv.dir

    def ctl(*args):
        p = subprocess.run([sys.executable, KVCTL, "--state-dir", d, *args], capture_output=True, text=True,
                           timeout=30)
        return p.returncode, (json.loads(p.stdout) if p.stdout.strip().startswith("{") else p.stdout)

    rc, out = ctl("create-key", "cli1", "--size", "2048")
    assert rc == 0 and len(out["version"]) == 32, out
    rc, out = ctl("set", "cli1", out["version"], "--enabled", "false", "--exp", str(int(time.time()) + 60))
    assert rc == 0 and out["enabled"] is False, out
    rc, out = ctl("vault", "--soft-delete", "on", "--purge-protection", "on", "--rbac", "off")
    assert rc == 0 and out["recovery_level"] == "Recoverable", out
    rc, _ = ctl("vault", "--purge-protection", "off")
    rc, out = ctl("client", "add", "cliapp", "--secret", "x")
    assert rc == 0 and out["has_secret"] is True
    rc, out = ctl("grant", "cliapp", "cli1", "get,wrapKey,unwrapKey")
    assert rc == 0 and out["grants"] == {"cli1": ["get", "unwrapKey", "wrapKey"]}, out
    rc, out = ctl("revoke", "cliapp", "cli1", "wrapKey")
    assert out["grants"] == {"cli1": ["get", "unwrapKey"]}, out
    rc, out = ctl("fault", "/keys/cli1", "--status", "429", "--retry-after", "2", "--count", "1")
    assert rc == 0 and out["status"] == 429
    rc, out = ctl("raw", "/keys/cli1", "--status", "500", "--body", "x", "--header", "X-A:b")
    assert rc == 0 and out["status"] == 500
    rc, out = ctl("fault-clear")
    assert rc == 0 and out["cleared_faults"] == 1 and out["cleared_raw"] == 1, out
    rc, out = ctl("stats")
    assert rc == 0 and "ops" in out
    rc, out = ctl("set", "nosuchkey", "latest", "--enabled", "true")
    assert rc == 1 and out["error"]["code"] == "NotFound", out
    rc, out = ctl("env")
    assert rc == 0 and "export AZURE_TENANT_ID=" in out


@test
def request_log_has_no_secrets():
    with open(os.path.join(F.srv.dir, "requests.log")) as f:
        log = f.read()
    lines = [l for l in log.splitlines() if not l.startswith("#")]
    assert len(lines) > 100, len(lines)
    assert "op=unwrap_key client=app1" in log
    for secret in (F.tok, F.hsm_tok, "s3cret-app1", F.srv.info["admin_token"], F.srv.info["identity_header"]):
        assert secret not in log, "a secret leaked into requests.log"
    assert "/admin/" not in log


def persistence_test(base):
    """--persist: a restarted server is the same vault (keys, clients, CA)."""
    d = os.path.join(base, "persist")
    a = Server(d, "--persist")
    try:
        k = a.create_key("p1")
        a.admin("POST", "/admin/clients", {"client_id": "papp", "secret": "ps"})
        a.admin("POST", "/admin/grants", {"client_id": "papp", "key": "p1", "permissions": ["get", "wrapKey",
                                                                                             "unwrapKey"]})
        tok = a.secret_token("papp", "ps")
        w = expect(a.crypto(tok, "wrapkey", "p1", k["version"], "RSA-OAEP-256", b"p" * 32), 200).json()["value"]
        ca = open(a.info["ca_file"]).read()
    finally:
        a.stop()
    assert not os.path.exists(os.path.join(d, "server.json")), "server.json left behind"
    b = Server(d, "--persist")
    try:
        assert open(b.info["ca_file"]).read() == ca
        r = expect(b.crypto(tok, "unwrapkey", "p1", k["version"], "RSA-OAEP-256", w), 200)  # same token, same key
        assert unb64url(r.json()["value"]) == b"p" * 32
    finally:
        b.stop()


# --------------------------------------------------------------------------------------
# The keys REST surface, the Managed HSM host, JWT tokens, built-in transient behaviours
# --------------------------------------------------------------------------------------


def officer(srv, cid, resource=VAULT):
    """A client holding every key permission on the whole vault, and its token."""
    srv.admin("POST", "/admin/clients", {"client_id": cid, "secret": f"s-{cid}"})
    srv.admin("POST", "/admin/grants", {"client_id": cid, "key": "*"})
    return srv.secret_token(cid, f"s-{cid}", resource)


def follow_pages(srv, path, tok, hsm=False, maxresults=None):
    """Every item of a paged list, following nextLink; also the number of pages."""
    r = expect(srv.kv("GET", path + (f"?maxresults={maxresults}" if maxresults else ""), tok, hsm=hsm), 200)
    items, pages = [], 0
    while True:
        page = r.json()
        items += page["value"]
        pages += 1
        if not page.get("nextLink"):
            return items, pages
        link = page["nextLink"]
        assert link.startswith(f"https://127.0.0.1:{srv.hsm_port if hsm else srv.port}/"), link
        r = expect(srv.kv("GET", link.split("/", 3)[3] and "/" + link.split("/", 3)[3], tok, api=None, hsm=hsm), 200)


@test
def rest_create_get_update_list():
    srv = F.srv
    tok = officer(srv, "officer")
    r = expect(srv.kv("POST", "/keys/rest1/create", tok, {"kty": "RSA", "key_size": 2048,
                                                          "attributes": {"enabled": True}, "tags": {"a": "1"}}), 200)
    b = r.json()
    kid = b["key"]["kid"]
    assert kid.startswith(f"https://127.0.0.1:{srv.port}/keys/rest1/") and len(kid.rsplit("/", 1)[1]) == 32, b
    assert b["key"]["kty"] == "RSA" and b["tags"] == {"a": "1"} and b["attributes"]["enabled"] is True, b
    assert b["attributes"]["recoveryLevel"] and "created" in b["attributes"], b
    v1 = kid.rsplit("/", 1)[1]
    # latest and by version
    assert expect(srv.kv("GET", "/keys/rest1/", tok), 200).json()["key"]["kid"] == kid
    assert expect(srv.kv("GET", f"/keys/rest1/{v1}", tok), 200).json()["key"]["n"] == b["key"]["n"]
    expect(srv.kv("GET", "/keys/rest1/" + "0" * 32, tok), 404, "KeyNotFound")
    expect(srv.kv("GET", "/keys/nosuchkey", tok), 404, "KeyNotFound")
    # update: enabled, exp, nbf, tags, key_ops
    exp = int(time.time()) + 86400
    u = expect(srv.kv("PATCH", f"/keys/rest1/{v1}", tok, {"attributes": {"enabled": False, "exp": exp},
                                                         "tags": {"b": "2"}, "key_ops": ["wrapKey", "unwrapKey"]}),
               200).json()
    assert u["attributes"]["enabled"] is False and u["attributes"]["exp"] == exp, u
    assert u["tags"] == {"b": "2"} and u["key"]["key_ops"] == ["wrapKey", "unwrapKey"], u
    expect(srv.kv("POST", f"/keys/rest1/{v1}/wrapkey", tok, {"alg": "RSA-OAEP-256", "value": b64url(b"k" * 32)}),
           403, "Forbidden", "KeyDisabled")
    u = expect(srv.kv("PATCH", "/keys/rest1/", tok, {"attributes": {"enabled": True}}), 200).json()
    assert u["attributes"]["enabled"] is True and u["attributes"]["exp"] == exp, u
    expect(srv.kv("PATCH", "/keys/rest1/", tok, {"attributes": {"enabled": "yes"}}), 400, "BadParameter")
    expect(srv.kv("PATCH", "/keys/rest1/", tok, {"key_ops": ["fly"]}), 400, "BadParameter")
    # create on an existing name adds a version; versions are listed with paging
    expect(srv.kv("POST", "/keys/rest1/create", tok, {"kty": "RSA"}), 200)
    expect(srv.kv("POST", "/keys/rest1/create", tok, {"kty": "EC"}), 400, "BadParameter")
    expect(srv.kv("POST", "/keys/rest1/create", tok, {"kty": "oct-HSM"}), 400, "BadParameter")  # vault host
    items, pages = follow_pages(srv, "/keys/rest1/versions", tok, maxresults=1)
    assert len(items) == 2 and pages == 2 and all(i["kid"].startswith(kid.rsplit("/", 1)[0] + "/") for i in items)
    # list keys: versionless kids, every key of the vault host, paged by maxresults
    items, pages = follow_pages(srv, "/keys", tok, maxresults=2)
    kids = {i["kid"].rsplit("/", 1)[1] for i in items}
    assert {"rest1", "rsa2048", "rsa3072", "rsahsm"} <= kids and "hsm1" not in kids, kids
    assert pages >= 3, pages
    expect(srv.kv("GET", "/keys?maxresults=26", tok), 400, "BadParameter")
    # method not allowed on a known path; an unknown path is 404
    expect(srv.kv("POST", "/keys/rest1/versions", tok, {}), 405)
    expect(srv.kv("GET", "/keys/rest1/nosuchthing", tok), 404, "NotFound")
    # the permissions of a wrap-only client do not cover management
    expect(srv.kv("POST", "/keys/rest9/create", F.tok, {"kty": "RSA"}), 403, "Forbidden", "ForbiddenByPolicy")
    expect(srv.kv("GET", "/keys", F.tok), 403, "Forbidden")


@test
def rest_import_rotate_policy_crypto():
    srv = F.srv
    tok = officer(srv, "officer2")
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = priv.private_numbers()
    jwk = {"kty": "RSA", "n": b64url(n.public_numbers.n.to_bytes(256, "big")),
           "e": b64url(n.public_numbers.e.to_bytes(3, "big")), "d": b64url(n.d.to_bytes(256, "big")),
           "p": b64url(n.p.to_bytes(128, "big")), "q": b64url(n.q.to_bytes(128, "big"))}
    b = expect(srv.kv("PUT", "/keys/imp1", tok, {"key": jwk, "attributes": {"enabled": True}}), 200).json()
    v = b["key"]["kid"].rsplit("/", 1)[1]
    assert b["key"]["n"] == jwk["n"] and "d" not in b["key"], b
    wrapped = priv.public_key().encrypt(b"x" * 32, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    r = expect(srv.kv("POST", f"/keys/imp1/{v}/unwrapkey", tok, {"alg": "RSA-OAEP-256", "value": b64url(wrapped)}),
               200)
    assert unb64url(r.json()["value"]) == b"x" * 32
    expect(srv.kv("PUT", "/keys/imp2", tok, {"key": dict(jwk, d="AAAA")}), 400, "BadParameter")
    # encrypt / decrypt (RSA)
    c = expect(srv.kv("POST", f"/keys/imp1/{v}/encrypt", tok, {"alg": "RSA-OAEP", "value": b64url(b"hello")}),
               200).json()
    d = expect(srv.kv("POST", f"/keys/imp1/{v}/decrypt", tok, {"alg": "RSA-OAEP", "value": c["value"]}), 200).json()
    assert unb64url(d["value"]) == b"hello" and d["kid"].endswith(v)
    # rotation policy: the default, a set one, and rotate applying its expiryTime
    pol = expect(srv.kv("GET", "/keys/imp1/rotationpolicy", tok), 200).json()
    assert pol["id"].endswith("/keys/imp1/rotationpolicy") and pol["lifetimeActions"], pol
    body = {"lifetimeActions": [{"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}}],
            "attributes": {"expiryTime": "P1Y"}}
    pol = expect(srv.kv("PUT", "/keys/imp1/rotationpolicy", tok, body), 200).json()
    assert pol["attributes"]["expiryTime"] == "P1Y" and pol["lifetimeActions"][0]["action"]["type"] == "Rotate"
    assert expect(srv.kv("GET", "/keys/imp1/rotationpolicy", tok), 200).json()["attributes"]["expiryTime"] == "P1Y"
    expect(srv.kv("PUT", "/keys/imp1/rotationpolicy", tok, {"attributes": {"expiryTime": "P7D"}}), 400,
           "BadParameter")
    expect(srv.kv("PUT", "/keys/imp1/rotationpolicy", tok,
                  {"lifetimeActions": [{"trigger": {"timeAfterCreate": "soon"}, "action": {"type": "Rotate"}}]}),
           400, "BadParameter")
    t = int(time.time())
    rot = expect(srv.kv("POST", "/keys/imp1/rotate", tok), 200).json()
    v2 = rot["key"]["kid"].rsplit("/", 1)[1]
    assert v2 != v and abs(rot["attributes"]["exp"] - (t + 365 * 86400)) < 60, rot
    assert expect(srv.kv("GET", "/keys/imp1", tok), 200).json()["key"]["kid"].endswith(v2)
    expect(srv.kv("POST", "/keys/nosuch/rotate", tok), 404, "KeyNotFound")


@test
def rest_delete_recover_purge():
    srv = F.srv
    tok = officer(srv, "officer3")
    srv.admin("PATCH", "/admin/vault", {"soft_delete": True, "purge_protection": True})
    kid = expect(srv.kv("POST", "/keys/del1/create", tok, {"kty": "RSA"}), 200).json()["key"]["kid"]
    d = expect(srv.kv("DELETE", "/keys/del1", tok), 200).json()
    base = f"https://127.0.0.1:{srv.port}"
    assert d["recoveryId"] == f"{base}/deletedkeys/del1" and d["key"]["kid"] == kid, d
    assert d["scheduledPurgeDate"] - d["deletedDate"] == 90 * 86400, d
    expect(srv.kv("GET", "/keys/del1", tok), 404, "KeyNotFound")
    expect(srv.kv("POST", f"/keys/del1/{kid.rsplit('/', 1)[1]}/wrapkey", tok,
                  {"alg": "RSA-OAEP-256", "value": b64url(b"k" * 32)}), 404, "KeyNotFound")
    expect(srv.kv("POST", "/keys/del1/create", tok, {"kty": "RSA"}), 409, "Conflict")
    g = expect(srv.kv("GET", "/deletedkeys/del1", tok), 200).json()
    assert g["recoveryId"] == d["recoveryId"] and g["key"]["kid"] == kid, g
    items, _ = follow_pages(srv, "/deletedkeys", tok)
    assert any(i["kid"] == f"{base}/keys/del1" and i["recoveryId"] for i in items), items
    r = expect(srv.kv("POST", "/deletedkeys/del1/recover", tok), 200).json()
    assert r["key"]["kid"] == kid and "recoveryId" not in r, r
    expect(srv.kv("GET", "/keys/del1", tok), 200)
    expect(srv.kv("GET", "/deletedkeys/del1", tok), 404, "KeyNotFound")
    expect(srv.kv("POST", "/deletedkeys/del1/recover", tok), 404, "KeyNotFound")
    expect(srv.kv("DELETE", "/keys/del1", tok), 200)
    expect(srv.kv("DELETE", "/deletedkeys/del1", tok), 403, "Forbidden")  # purge protection
    expect(srv.kv("GET", "/deletedkeys/del1", tok), 200)
    srv.admin("PATCH", "/admin/vault", {"purge_protection": False})
    r = expect(srv.kv("DELETE", "/deletedkeys/del1", tok), 204)
    assert r.body == b""
    expect(srv.kv("GET", "/deletedkeys/del1", tok), 404, "KeyNotFound")
    expect(srv.kv("POST", "/keys/del1/create", tok, {"kty": "RSA"}), 200)  # the name is free again
    # without the purge permission
    srv.admin("POST", "/admin/grants/revoke", {"client_id": "officer3", "key": "*", "permissions": ["purge"]})
    expect(srv.kv("DELETE", "/keys/del1", tok), 200)
    expect(srv.kv("DELETE", "/deletedkeys/del1", tok), 403, "Forbidden", "ForbiddenByPolicy")
    srv.admin("PATCH", "/admin/vault", {"purge_protection": True})


@test
def managed_hsm_host_and_audiences():
    srv = F.srv
    assert srv.info["hsm_url"] == f"https://127.0.0.1:{srv.hsm_port}" and srv.hsm_port != srv.port
    vtok = officer(srv, "officer4")
    htok = srv.secret_token("officer4", "s-officer4", HSM)
    # each host refuses the other's audience with 401 Invalid audience (AKV10022) and its own challenge
    r = expect(srv.kv("GET", "/keys", vtok, hsm=True), 401, "Unauthorized")
    assert "AKV10022" in r.json()["error"]["message"] and "Invalid audience" in r.json()["error"]["message"], r
    assert f'resource="{HSM}"' in r.header("www-authenticate"), r.headers
    assert f"https://127.0.0.1:{srv.port}/{srv.tenant}" in r.header("www-authenticate"), r.headers
    r = expect(srv.kv("GET", "/keys", htok), 401, "Unauthorized")
    assert "Invalid audience" in r.json()["error"]["message"], r
    r = expect(srv.kv("GET", "/keys", None, hsm=True), 401)
    assert f'resource="{HSM}"' in r.header("www-authenticate")
    # keys made on the Managed HSM host
    b = expect(srv.kv("POST", "/keys/hk1/create", htok, {"kty": "oct-HSM", "key_size": 256}, hsm=True), 200).json()
    assert b["key"]["kid"].startswith(f"https://127.0.0.1:{srv.hsm_port}/keys/hk1/") and b["key"]["kty"] == "oct-HSM"
    v = b["key"]["kid"].rsplit("/", 1)[1]
    w = expect(srv.kv("POST", f"/keys/hk1/{v}/wrapkey", htok, {"alg": "A256KW", "value": b64url(b"c" * 32)},
                      hsm=True), 200).json()
    u = expect(srv.kv("POST", f"/keys/hk1/{v}/unwrapkey", htok, {"alg": "A256KW", "value": w["value"]}, hsm=True),
               200).json()
    assert unb64url(u["value"]) == b"c" * 32
    e = expect(srv.kv("POST", f"/keys/hk1/{v}/encrypt", htok, {"alg": "A256GCM", "value": b64url(b"msg")},
                      hsm=True), 200).json()
    assert len(unb64url(e["iv"])) == 12 and len(unb64url(e["tag"])) == 16, e
    d = expect(srv.kv("POST", f"/keys/hk1/{v}/decrypt", htok, dict(e, alg="A256GCM"), hsm=True), 200).json()
    assert unb64url(d["value"]) == b"msg"
    expect(srv.kv("POST", f"/keys/hk1/{v}/decrypt", htok, dict(e, alg="A256GCM", tag=b64url(b"0" * 16)), hsm=True),
           400, "BadParameter")
    r = expect(srv.kv("POST", "/keys/hk2/create", htok, {"kty": "RSA", "key_size": 2048}, hsm=True), 200).json()
    assert r["key"]["kty"] == "RSA-HSM", r
    # the hosts list their own keys; a vault key is not found on the Managed HSM host
    hsm_kids = {i["kid"].rsplit("/", 1)[1] for i in follow_pages(srv, "/keys", htok, hsm=True)[0]}
    assert {"hk1", "hk2"} <= hsm_kids and "rsa2048" not in hsm_kids, hsm_kids
    vault_kids = {i["kid"].rsplit("/", 1)[1] for i in follow_pages(srv, "/keys", vtok)[0]}
    assert "hk1" not in vault_kids, vault_kids
    expect(srv.kv("GET", "/keys/rsa2048", htok, hsm=True), 404, "KeyNotFound")
    # Managed HSM 403s are RBAC-style; the admin API lives on the vault host only
    expect(srv.kv("POST", "/keys/hk3/create", F.hsm_tok, {"kty": "oct-HSM"}, hsm=True), 403, "Forbidden",
           "ForbiddenByRbac")
    r = srv.request("GET", "/admin/state", headers={"X-Admin-Token": srv.info["admin_token"]}, port=srv.hsm_port)
    assert r.status == 404, r
    # delete and recover on the Managed HSM host
    expect(srv.kv("DELETE", "/keys/hk2", htok, hsm=True), 200)
    assert expect(srv.kv("GET", "/deletedkeys/hk2", htok, hsm=True), 200).json()["recoveryId"].startswith(
        f"https://127.0.0.1:{srv.hsm_port}/deletedkeys/")
    expect(srv.kv("POST", "/deletedkeys/hk2/recover", htok, hsm=True), 200)


@test
def jwt_access_tokens():
    srv = F.srv
    parts = F.tok.split(".")
    assert len(parts) == 3, "the access token is not a JWT"
    header, claims = json.loads(unb64url(parts[0])), json.loads(unb64url(parts[1]))
    assert header["alg"] == "HS256" and header["typ"] == "JWT", header
    assert claims["aud"] == VAULT and claims["tid"] == srv.tenant and claims["appid"] == "app1", claims
    assert claims["iss"] == f"https://sts.windows.net/{srv.tenant}/" and uuid.UUID(claims["oid"]), claims
    assert claims["iat"] <= time.time() < claims["exp"] and claims["exp"] - claims["iat"] == 3600, claims
    assert json.loads(unb64url(F.hsm_tok.split(".")[1]))["aud"] == HSM
    # a changed claim breaks the signature; so does a token signed with another key
    forged = b64url(json.dumps(dict(claims, aud=HSM)).encode())
    r = expect(srv.get_key(f"{parts[0]}.{forged}.{parts[2]}", "hsm1"), 401, "Unauthorized")
    assert "signature" in r.json()["error"]["message"], r
    expect(srv.get_key(f"{parts[0]}.{parts[1]}.{b64url(os.urandom(32))}", "rsa2048"), 401, "Unauthorized")
    expect(srv.get_key("opaque-random-string", "rsa2048"), 401, "Unauthorized")
    expect(srv.get_key(F.tok, "rsa2048"), 200)


@test
def transient_behaviours():
    srv = F.srv
    srv.admin("POST", "/admin/clients", {"client_id": "mi-t", "managed_identity": True})
    path = f"/metadata/identity/oauth2/token?api-version=2018-02-01&resource={VAULT}&client_id=mi-t"
    for kind, status, words in (("imds-404", 404, "updating"), ("imds-410", 410, "70 seconds"),
                                ("imds-429", 429, "Throttle"), ("imds-500", 500, "Transient")):
        srv.admin("POST", "/admin/transient", {"kind": kind, "count": 1})
        r = srv.request("GET", path, headers={"Metadata": "true"}, plain=True)
        assert r.status == status and words in r.json()["error_description"], (kind, r)
        r = srv.request("GET", path, headers={"Metadata": "true"}, plain=True)
        assert r.status == 200 and r.json()["access_token"].count(".") == 2, r  # one reply only (count 1)
    srv.admin("POST", "/admin/transient", {"kind": "firewall", "count": 1})
    expect(srv.get_key(F.tok, "rsa2048"), 403, "Forbidden", "ForbiddenByFirewall")
    expect(srv.get_key(F.tok, "rsa2048"), 200)
    srv.admin("POST", "/admin/transient", {"kind": "throttle", "count": 1, "retry_after": 3})
    r = expect(srv.kv("GET", "/keys/rsa2048", F.tok), 429, "Throttled")
    assert r.header("retry-after") == "3", r.headers
    srv.admin("POST", "/admin/transient", {"kind": "throttle", "count": 1})
    assert expect(srv.get_key(F.tok, "rsa2048"), 429).header("retry-after") == "10"
    srv.admin("POST", "/admin/transient", {"kind": "nope"}, expect=400)


# --------------------------------------------------------------------------------------


def main() -> int:
    started = time.monotonic()
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="kvserver-test.") as base:
        srv = Server(os.path.join(base, "main"))
        try:
            setup(srv)
            cases = [(fn.__name__, fn) for fn in TESTS] + [("persistence", lambda: persistence_test(base))]
            for name, fn in cases:
                t = time.monotonic()
                try:
                    fn()
                    passed += 1
                    print(f"ok - {name} ({time.monotonic() - t:.2f}s)")
                except Exception as e:  # report and keep going
                    failed += 1
                    print(f"FAIL - {name}: {type(e).__name__}: {e}")
                    if VERBOSE:
                        traceback.print_exc()
        finally:
            srv.stop()
            err = srv.proc.stderr.read().decode()
            if err.strip():
                print("# kvserver stderr:\n" + "\n".join("#   " + l for l in err.splitlines()))
                if "Traceback" in err:
                    failed += 1
                    print("FAIL - server printed a traceback")
    print(f"# {time.monotonic() - started:.1f}s")
    print(f"test_kvserver: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
