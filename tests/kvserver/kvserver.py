#!/usr/bin/env python3
"""kvserver: an offline, loopback-only stand-in for Azure Key Vault, used by the cmkfs tests.

One process serves, on 127.0.0.1 only:

  HTTPS (--port)       the vault host: the keys REST surface below for vault keys (RSA,
                       RSA-HSM; Managed HSM keys made through the admin API too, with their
                       own audience, as older tests expect), an Entra ID-style token endpoint,
                       and an admin API that tests use to drive it;
  HTTPS (--hsm-port)   the Managed HSM host: the same keys REST surface for Managed HSM keys
                       (RSA-HSM, oct-HSM) and only tokens for https://managedhsm.azure.net;
  HTTP  (--http-port)  the managed-identity token endpoints: IMDS (VMs) and App Service.

The keys REST surface [1] [14] (api-version 7.0..7.6, 2025-07-01), as the official SDKs use it:
  POST   /keys/{name}/create                  create (a new version if the key exists)
  PUT    /keys/{name}                         import a JSON web key (RSA n,e,d,p,q; oct k)
  GET    /keys/{name}[/{version}]             KeyBundle
  PATCH  /keys/{name}[/{version}]             update: attributes.enabled/nbf/exp, tags, key_ops
  GET    /keys, /keys/{name}/versions         lists: maxresults 1..25, $skiptoken, nextLink
  POST   /keys/{name}/rotate                  new version; exp from the policy's expiryTime
  GET|PUT /keys/{name}/rotationpolicy         lifetimeActions (Rotate/Notify), attributes.expiryTime
  DELETE /keys/{name}                         DeletedKeyBundle (recoveryId, deletedDate,
                                              scheduledPurgeDate) with soft delete
  GET    /deletedkeys, /deletedkeys/{name}    deleted keys
  POST   /deletedkeys/{name}/recover          KeyBundle
  DELETE /deletedkeys/{name}                  purge: 204, or 403 with purge protection
  POST   /keys/{name}[/{version}]/wrapkey|unwrapkey|encrypt|decrypt
Each needs its access-policy permission (get, list, create, import, update, delete,
recover, purge, rotate, getrotationpolicy, setrotationpolicy, wrapKey, unwrapKey, encrypt,
decrypt) or, on RBAC vaults and Managed HSM, names the RBAC data action in the 403 [8] [13].
Access tokens are JWTs (header.payload.signature) this server signs with HS256 and checks
on every request: signature, exp, tid, aud (401 "AKV10022: Invalid audience" when a
vault token reaches the Managed HSM host or the other way round), and that it was not
revoked [15]. Opaque tokens are refused.

Usage:   python3 kvserver.py --state-dir DIR [--port 0] [--http-port 0] [--hsm-port 0] [--persist]

Once the ports listen, DIR/server.json appears (written atomically; a test waits for it):
  {"url", "imds_url", "identity_endpoint", "identity_header", "ca_file", "pid", "tenant",
   "admin_token", "token_endpoint", "authority_host", "state_dir", "hsm_url"}
DIR also gets ca.pem (the throwaway CA to trust), server.pem/server.key and requests.log
(one line per request; never a token, secret or key material). With --persist the keys,
clients, grants, tokens and vault settings are kept in DIR/state.json (private key material
included: test use only) and the CA is reused, so a restarted server is the same vault.
Without --persist everything lives in memory and the CA key is never written to disk.

The admin API (HTTPS, header "X-Admin-Token: <admin_token>") is documented at AdminApi
below; tests/kvserver/kvctl.py is a CLI over it.

Everything the cmkfs Key Vault client must cope with can be produced: disabled, expired,
not-yet-valid, deleted and recovered keys; missing permissions (access-policy and RBAC
vaults); revoked and expired tokens; and, through fault injection, throttling (429 with and
without Retry-After), 5xx, dropped connections, latency, hangs and hostile raw responses.
Azure's documented transient replies are built in (POST /admin/transient, kvctl transient):
IMDS 404/410/429/500, 403 ForbiddenByFirewall and 429 with Retry-After [16].

Bounds: request bodies up to 1 MiB; at most MAX_KEYS keys, MAX_VERSIONS versions per key,
MAX_TAGS tags per version and MAX_TOKENS remembered tokens (older ones then count as
revoked); list pages of at most 25.

------------------------------------------------------------------------------------------
Sources: what real service behaviour this follows
------------------------------------------------------------------------------------------
[1] Wrap Key REST reference: POST {vaultBaseUrl}/keys/{key-name}/{key-version}/wrapkey
    ?api-version=7.4, body {"alg", "value" (base64url)}, needs the keys/wrapKey permission.
    https://learn.microsoft.com/en-us/rest/api/keyvault/keys/wrap-key/wrap-key
[2] Authentication, requests and responses: api-version is required ("there is no
    default"); errors are {"error": {"code", "message"}}; a missing or refused token gets
    401 + "WWW-Authenticate: Bearer authorization="...", resource="..."".
    https://learn.microsoft.com/azure/key-vault/general/authentication-requests-and-responses
    (MicrosoftDocs/azure-security-docs articles/key-vault/general/authentication-requests-and-responses.md)
[3] REST API error codes: 401 for a missing, wrong-audience or expired token; 403 for a
    missing permission; 429 when throttled.
    https://learn.microsoft.com/azure/key-vault/general/rest-error-codes
[4] Key attributes, "Date-time controlled operations": outside the nbf/exp window keys
    still work for decrypt, release, unwrap and verify; other operations are refused (403);
    enabled=false refuses cryptographic operations.
    https://learn.microsoft.com/azure/key-vault/keys/about-keys-details
    (azure-security-docs articles/key-vault/includes/key-attributes.md)
[5] Key types and algorithms: RSA-OAEP-256 = OAEP with SHA-256 and MGF1-SHA-256; RSA-OAEP
    = SHA-1; RSA1_5; AES key wrap (AES-KW) for oct-HSM keys in Managed HSM only.
    https://learn.microsoft.com/azure/key-vault/keys/about-keys-details
[6] Throttling: "returns HTTP status code 429 (Too many requests)".
    https://learn.microsoft.com/azure/key-vault/general/overview-throttling
[7] Recorded real responses (Azure/azure-sdk-for-js, sdk/keyvault/*/recordings/node/...):
    - vault challenge: 'Bearer authorization="https://login.windows.net/{tenant}",
      resource="https://vault.azure.net"' with body {"error":{"code":"Unauthorized",
      "message":"AKV10000: Request is missing a Bearer or PoP token."}};
    - Managed HSM challenge: 'Bearer authorization="https://login.microsoftonline.com/
      {tenant}", resource="https://managedhsm.azure.net"' (real MHSM sends an empty body;
      kvserver sends the JSON body for both flavours);
    - token endpoint success: {"token_type":"Bearer","expires_in":3599,
      "ext_expires_in":3599,"access_token":"..."};
    - 404 {"error":{"code":"KeyNotFound","message":"A key with (name/id) NAME was not found
      in this key vault. If you recently deleted this key you may be able to recover it
      using the correct recovery command. For help resolving this issue, please see
      https://go.microsoft.com/fwlink/?linkid=2125182"}};
    - attributes.recoveryLevel "Recoverable+Purgeable" on a soft-delete vault.
    (keys_client__create_read_update_and_delete_operations/recording_can_update_a_disabled_key.js,
     keyvault-admin/.../challenge_based_authentication_tests/recording_authentication_should_be_idempotent.js)
[8] Real 403/401 bodies quoted in public issues and code:
    - access policy: "The user, group or application 'appid=..;oid=..;iss=https://sts.
      windows.net/{tenant}/' does not have keys get permission on key vault
      '{vault};location=..'. For help resolving this issue, please see
      https://go.microsoft.com/fwlink/?linkid=2125287", innererror "AccessDenied" (most
      captures) or "ForbiddenByPolicy" (newer captures); kvserver defaults to
      ForbiddenByPolicy and the vault setting policy_denied_code switches it;
    - RBAC: "Caller is not authorized to perform action on resource.\r\n...Action:
      'Microsoft.KeyVault/vaults/keys/read'...", innererror "ForbiddenByRbac";
    - secrets: "Operation get is not allowed on a disabled secret." (innererror
      SecretDisabled) and "Operation get is not allowed on a expired secret." (innererror
      SecretExpired, Azure/AzureKeyVault issue #19); the key messages below follow the
      same pattern with KeyDisabled / KeyExpired / KeyNotYetValid (by analogy: not
      verified against the live service);
    - "AKV10022: Invalid audience. Expected https://vault.azure.net, found: ...";
    - unknown api-version: "The specified version (X) is not recognized. Consider using
      the latest supported version (Y)." (code BadParameter).
[9] Entra certificate credentials: client assertion JWT signed PS256 with header x5t#S256
    (SHA-256 thumbprint of the DER certificate; older clients RS256 + x5t SHA-1);
    aud = https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token, iss = sub =
    client id, exp, nbf, jti, iat.
    https://learn.microsoft.com/entra/identity-platform/certificate-credentials
[10] Entra error bodies: {"error":"invalid_client","error_description":"AADSTS7000215:
    Invalid client secret provided. ... Trace ID: .. Correlation ID: .. Timestamp: ..",
    "error_codes":[7000215],"timestamp","trace_id","correlation_id","error_uri"}; codes
    seen in MSAL/SDK issues: 700016 (application not found), 700023 (client assertion
    audience claim does not match Realm issuer), 700024 (assertion not within its valid
    time range), 700027 (invalid signature / key not registered), 70021 (no matching
    federated identity record), 1002012 (scope must end in /.default), 90002 (tenant
    not found). Messages here are shortened.
[11] IMDS: GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01
    &resource=...[&client_id=...] with "Metadata: true"; response values are strings:
    {"access_token","refresh_token":"","expires_in":"3599","expires_on","not_before",
    "resource","token_type":"Bearer"} (+ client_id in current IMDS); without the header:
    400 {"error":"bad_request_102","error_description":"Required metadata header not
    specified"}.
    https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
[12] App Service / Functions: GET {IDENTITY_ENDPOINT}?resource=...&api-version=2019-08-01
    with header X-IDENTITY-HEADER: {IDENTITY_HEADER}; response {"access_token",
    "expires_on":"1586984735","resource","token_type":"Bearer","client_id"}.
    https://learn.microsoft.com/azure/app-service/overview-managed-identity
[13] Key Vault access-policy key permissions (get, list, update, create, import, delete,
    recover, purge, encrypt, decrypt, wrapKey, unwrapKey, rotate, getrotationpolicy,
    setrotationpolicy) and the RBAC data actions behind them (Microsoft.KeyVault/vaults/
    keys/read, keys/create/action, keys/import/action, keys/update/action, keys/delete,
    keys/recover/action, keys/purge/action, keys/rotate/action, keys/encrypt/action,
    keys/decrypt/action, keys/wrap/action, keys/unwrap/action, keyrotationpolicies/read
    and /write).
    https://learn.microsoft.com/azure/key-vault/general/rbac-guide and
    https://learn.microsoft.com/azure/role-based-access-control/permissions/security
[14] Keys REST reference (api-version 7.4..7.6): Create Key, Import Key, Get Key, Get Keys
    (maxresults "maximum number of results to return in a page", 1..25, nextLink), Get
    Key Versions, Update Key, Rotate Key, Get/Update Key Rotation Policy (lifetimeActions
    trigger timeAfterCreate/timeBeforeExpiry, action Rotate/Notify; attributes.expiryTime,
    ISO 8601, at least 28 days), Delete Key (DeletedKeyBundle: recoveryId, deletedDate,
    scheduledPurgeDate), Get Deleted Key(s), Recover Deleted Key, Purge Deleted Key (204),
    Encrypt/Decrypt (A128GCM..A256GCM return iv and tag on Managed HSM).
    https://learn.microsoft.com/rest/api/keyvault/keys
    Recorded real replies (Azure/azure-sdk-for-js sdk/keyvault/keyvault-keys/recordings/
    node/...: keys_client__restore_keys_and_recover_backups/recording_can_recover_a_
    deleted_key.js): DELETE /keys/{name} -> 200 {"recoveryId":"https://{vault}/
    deletedkeys/{name}","deletedDate","scheduledPurgeDate" (= deletedDate + 90 days),
    "key","attributes"}; GET /deletedkeys/{name} while deletion is in progress and after
    recovery -> 404 {"error":{"code":"KeyNotFound","message":"Deleted Key not found:
    {name}"}} (kvserver deletes and recovers at once: the SDK pollers accept either).
[15] Entra access tokens: JWTs with aud (https://vault.azure.net or
    https://managedhsm.azure.net for a /.default scope on those resources), iss
    https://sts.windows.net/{tenant}/ (v1 tokens), tid, oid, appid, iat, nbf, exp; the
    resource validates signature, audience, issuer and lifetime.
    https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
    (real tokens are RS256 with Entra's keys; kvserver signs HS256 with a key of its own,
    kept in state.json with --persist.)
[16] Transient replies: managed identity "Error handling" table (how-to-use-vm-token):
    404 "IMDS endpoint is updating" (retry with exponential backoff), 410 "IMDS is going
    through updates ... available within 70 seconds", 429 "IMDS Throttle limit reached",
    5xx "Transient error from service" (the statuses and reasons are documented; the JSON
    bodies are kvserver's, in IMDS's {"error","error_description"} shape).
    https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/how-to-use-vm-token
    Firewall: 403 with innererror "ForbiddenByFirewall" and "Client address is not
    authorized and caller is not a trusted service" (Key Vault private-link and network
    troubleshooting pages; REST error codes [3]). Throttling: 429 with Retry-After [6].
Messages and inner codes not covered above (bad base64, wrong algorithm, decryption failure,
key_ops refusal, expired or revoked token, IMDS/App Service misuse, jti replay, kvserver's
limits, purge refused under purge protection, kty not supported on a host) are
approximations: a client must branch on the HTTP status and error codes, never on text.

[17] Azure Arc-enabled servers (HIMDS, "Authenticate against Azure resources with Azure
    Arc-enabled servers"): IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/
    oauth2/token and IMDS_ENDPOINT=http://localhost:40342; GET ?api-version=2020-06-01&
    resource=... with "Metadata: true" gets 401 and "WWW-Authenticate: Basic realm=
    /var/opt/azcmagent/tokens/<name>.key"; the same GET with "Authorization: Basic <file
    contents>" gets the token. System-assigned identity only. Here the endpoint is
    /arc/metadata/identity/oauth2/token on the plain port and the directory is
    {state-dir}/arc-tokens (0700).
    https://learn.microsoft.com/azure/azure-arc/servers/managed-identity-authentication

Deliberate simplifications: one vault and one Managed HSM per server, one key namespace for
both (a name used on one host is a 409 Conflict on the other); the host name in a key id is
whatever Host the client connected to; deletion, recovery and purge take effect at once;
a rotation policy's timeAfterCreate never rotates by itself (POST rotate does); EC keys,
backup/restore, release and sign/verify are not served. On the vault host a key's flavour
is chosen when it is created (oct-HSM keys made through the admin API are Managed HSM keys,
which always use RBAC-style 403s as Managed HSM has no access policies).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import secrets
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01")
VAULT_RESOURCE = "https://vault.azure.net"
HSM_RESOURCE = "https://managedhsm.azure.net"
RESOURCES = (VAULT_RESOURCE, HSM_RESOURCE)
VAULT_NAME = "kvserver"  # appears in 403 messages, like a real vault's name
LOCATION = "local"

KEY_NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,127}$")
VERSION_RE = re.compile(r"^[0-9a-fA-F]{32}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
B64URL_RE = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")

KEY_TYPES = ("RSA", "RSA-HSM", "oct-HSM")
RSA_SIZES = (2048, 3072, 4096)
AES_SIZES = (128, 192, 256)
RSA_ALGS = ("RSA-OAEP-256", "RSA-OAEP", "RSA1_5")
ALL_KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey")
# Access-policy key permissions [13]; a grant without a list gives all of them.
PERMISSIONS = ("get", "wrapKey", "unwrapKey", "list", "create", "import", "update", "delete", "recover",
               "purge", "rotate", "getrotationpolicy", "setrotationpolicy", "encrypt", "decrypt")
# RBAC data actions named in ForbiddenByRbac messages [8] [13].
RBAC_ACTIONS = {"get": "keys/read", "wrapKey": "keys/wrap/action", "unwrapKey": "keys/unwrap/action",
                "list": "keys/read", "create": "keys/create/action", "import": "keys/import/action",
                "update": "keys/update/action", "delete": "keys/delete", "recover": "keys/recover/action",
                "purge": "keys/purge/action", "rotate": "keys/rotate/action",
                "getrotationpolicy": "keyrotationpolicies/read", "setrotationpolicy": "keyrotationpolicies/write",
                "encrypt": "keys/encrypt/action", "decrypt": "keys/decrypt/action"}
MAX_KEYS = 1000  # keys (live and deleted) per server
MAX_VERSIONS = 100  # versions per key
MAX_TAGS = 15  # Key Vault's limit on tags per object
MAX_TOKENS = 5000  # live tokens remembered (for revocation); the oldest are forgotten first
PAGE_SIZE = 25  # list pages: maxresults is 1..25 [14]
DURATION_RE = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")

MAX_BODY = 1 << 20  # requests larger than this are refused (413)
CLOCK_SKEW = 300  # seconds of leeway for client assertion nbf/exp, like Entra
DEFAULT_TOKEN_LIFETIME = 3600
DEFAULT_HANG_SECONDS = 300


def now() -> int:
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url (padding optional); ValueError on anything else."""
    if not isinstance(text, str) or not B64URL_RE.match(text):
        raise ValueError("not base64url")
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise ValueError("bad base64url length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_encode(header: dict, claims: dict, key: bytes) -> str:
    signing = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    return signing + "." + b64url(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def jwt_decode_hs256(token: str, key: bytes) -> dict:
    """The claims of an HS256 JWT signed with key; ValueError if malformed or wrongly signed."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise ValueError("not a JWT")
    header, claims = json.loads(b64url_decode(parts[0])), json.loads(b64url_decode(parts[1]))
    if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "HS256":
        raise ValueError("not an HS256 JWT")
    want = hmac.new(key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(want, b64url_decode(parts[2])):
        raise ValueError("bad signature")
    return claims


def parse_duration(text) -> int:
    """Seconds in an ISO 8601 duration as rotation policies use them (P90D, P1Y, P2M; a year is
    365 days and a month 30 here); ValueError otherwise."""
    m = DURATION_RE.match(text) if isinstance(text, str) and text != "P" and not text.endswith("T") else None
    if not m:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    y, mo, d, h, mi, sec = (int(g or 0) for g in m.groups())
    return ((y * 365 + mo * 30 + d) * 24 + h) * 3600 + mi * 60 + sec


def int_bytes(n: int) -> bytes:
    return n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")


def api_at_least(api_version: str, minimum: str) -> bool:
    return API_VERSIONS.index(api_version) >= API_VERSIONS.index(minimum)


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------
# Errors: an HttpError carries a complete response
# --------------------------------------------------------------------------------------


class HttpError(Exception):
    def __init__(self, status: int, body, headers=None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def kv_error(status: int, code: str, message: str, inner: str | None = None, headers=None) -> HttpError:
    """Key Vault's error body [2]: {"error": {"code", "message"[, "innererror": {"code"}]}}."""
    err = {"code": code, "message": message}
    if inner:
        err["innererror"] = {"code": inner}
    return HttpError(status, {"error": err}, headers)


def bad_parameter(message: str) -> HttpError:
    return kv_error(400, "BadParameter", message)


def entra_error(status: int, error: str, aadsts: int, description: str, host: str) -> HttpError:
    """Entra ID's token-endpoint error body [10]."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    return HttpError(status, {
        "error": error,
        "error_description": f"AADSTS{aadsts}: {description}\r\nTrace ID: {trace}\r\n"
                             f"Correlation ID: {corr}\r\nTimestamp: {stamp}",
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": f"https://{host}/error?code={aadsts}",
    })


def admin_error(status: int, message: str, code: str | None = None) -> HttpError:
    return kv_error(status, code or {400: "BadRequest", 404: "NotFound", 409: "Conflict"}.get(status, "Error"), message)


# --------------------------------------------------------------------------------------
# TLS material: a throwaway CA and a server certificate for 127.0.0.1 / localhost
# --------------------------------------------------------------------------------------


def _cert_builder(subject, issuer, public_key, days):
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))


def make_tls_material(state_dir: str, reuse: bool) -> tuple[str, str, str]:
    """Returns (ca.pem, server.pem, server.key) paths in state_dir.

    The CA key is only written (ca.key) when reuse is asked for (--persist); otherwise it
    exists only in this function and the CA is truly throwaway."""
    ca_pem, srv_pem, srv_key = (os.path.join(state_dir, n) for n in ("ca.pem", "server.pem", "server.key"))
    ca_key_path = os.path.join(state_dir, "ca.key")
    if reuse and all(os.path.exists(p) for p in (ca_pem, srv_pem, srv_key, ca_key_path)):
        return ca_pem, srv_pem, srv_key

    days = 3650 if reuse else 30
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"kvserver test CA {secrets.token_hex(4)}")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (_cert_builder(ca_name, ca_name, ca_key.public_key(), days)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                       x509.DNSName("localhost")])
    cert = (_cert_builder(name, ca_name, key.public_key(), days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(san, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))

    pem = serialization.Encoding.PEM
    write_atomic(ca_pem, ca_cert.public_bytes(pem), 0o644)
    write_atomic(srv_pem, cert.public_bytes(pem), 0o644)
    write_atomic(srv_key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()), 0o600)
    if reuse:
        write_atomic(ca_key_path, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()), 0o600)
    return ca_pem, srv_pem, srv_key


# --------------------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------------------


@dataclass
class KeyVersion:
    version: str
    kty: str
    size: int
    key_ops: list
    material: object  # rsa.RSAPrivateKey, or bytes for oct-HSM
    enabled: bool = True
    nbf: int | None = None
    exp: int | None = None
    created: int = field(default_factory=now)
    updated: int = field(default_factory=now)
    tags: dict = field(default_factory=dict)

    @property
    def is_rsa(self) -> bool:
        return self.kty.startswith("RSA")


@dataclass
class KeyRecord:
    name: str
    managed_hsm: bool
    versions: dict = field(default_factory=dict)  # version -> KeyVersion, oldest first
    deleted: int | None = None  # deletedDate while soft-deleted
    rotation_policy: dict | None = None  # as PUT (lifetimeActions, attributes.expiryTime); None: the default

    @property
    def flavour(self) -> str:
        return "hsm" if self.managed_hsm else "vault"

    @property
    def latest(self) -> KeyVersion:
        return next(reversed(self.versions.values()))


def cert_epoch(cert: x509.Certificate, attr: str) -> int:
    """A certificate validity bound as an epoch (cryptography < 42 has only the naive UTC form)."""
    aware = getattr(cert, attr + "_utc", None)
    if aware is None:
        aware = getattr(cert, attr).replace(tzinfo=datetime.timezone.utc)
    return int(aware.timestamp())


@dataclass
class ClientCert:
    pem: str
    sha1: str  # base64url thumbprints, as in x5t / x5t#S256 [9]
    sha256: str
    public_key: object
    not_before: int
    not_after: int

    @classmethod
    def from_pem(cls, pem: str) -> "ClientCert":
        cert = x509.load_pem_x509_certificate(pem.encode())
        der = cert.public_bytes(serialization.Encoding.DER)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()  # the certificate only, never a key
        return cls(pem=pem, sha1=b64url(hashlib.sha1(der).digest()), sha256=b64url(hashlib.sha256(der).digest()),
                   public_key=cert.public_key(), not_before=cert_epoch(cert, "not_valid_before"),
                   not_after=cert_epoch(cert, "not_valid_after"))


@dataclass
class Client:
    client_id: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    secret: str | None = None
    certs: list = field(default_factory=list)  # [ClientCert]
    federated_tokens: list = field(default_factory=list)
    managed_identity: bool = False
    system_assigned: bool = False
    enabled: bool = True

    def summary(self) -> dict:  # for the admin API: never the secret or tokens
        return {"client_id": self.client_id, "object_id": self.object_id, "has_secret": self.secret is not None,
                "certificates": [{"x5t": c.sha1, "x5t#S256": c.sha256} for c in self.certs],
                "federated_tokens": len(self.federated_tokens), "managed_identity": self.managed_identity,
                "system_assigned": self.system_assigned, "enabled": self.enabled}


@dataclass
class Token:
    client_id: str
    resource: str
    expires: int


@dataclass
class VaultProps:
    soft_delete: bool = True  # real vaults: soft delete on, purge protection off by default
    purge_protection: bool = False
    retention_days: int = 90
    rbac: bool = False
    policy_denied_code: str = "ForbiddenByPolicy"  # or "AccessDenied" [8]
    disabled_get: str = "ok"  # "ok": GET of a disabled key answers 200 enabled=false; "forbidden": 403
    token_lifetime: int = DEFAULT_TOKEN_LIFETIME
    # Entra settings live here too. MSAL reuses one signed client assertion for several token
    # requests (for its lifetime), so Entra evidently accepts a repeated jti; tests that want
    # strict one-time assertions turn this on.
    reject_assertion_replay: bool = False


@dataclass
class FaultRule:
    id: int
    pattern: str
    method: str | None = None
    status: int | None = None
    retry_after: str | None = None
    body: str | None = None
    latency_ms: int = 0
    drop: bool = False
    hang: bool = False
    hang_seconds: float = DEFAULT_HANG_SECONDS
    remaining: int | None = None  # None: unlimited
    probability: float | None = None
    until: float | None = None  # time.time() deadline
    applied: int = 0

    def describe(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v is not None and v is not False}
        if not self.latency_ms:
            del d["latency_ms"]
        if not self.hang:
            del d["hang_seconds"]
        return d


@dataclass
class RawRule:
    id: int
    pattern: str
    status: int
    body: bytes
    headers: list  # [(name, value)]
    method: str | None = None
    remaining: int | None = 1
    applied: int = 0

    def describe(self) -> dict:
        return {"id": self.id, "pattern": self.pattern, "method": self.method, "status": self.status,
                "body_bytes": len(self.body), "headers": self.headers, "remaining": self.remaining,
                "applied": self.applied}


# --------------------------------------------------------------------------------------
# State: everything behind one lock
# --------------------------------------------------------------------------------------


class State:
    def __init__(self, tenant: str, persist_path: str | None):
        self.lock = threading.RLock()
        self.tenant = tenant
        self.persist_path = persist_path
        self.vault = VaultProps()
        self.keys: dict[str, KeyRecord] = {}  # lower-case name -> record (names are case-insensitive)
        self.clients: dict[str, Client] = {}
        self.grants: dict[tuple[str, str], set] = {}  # (client_id, lower key name or "*") -> perms
        self.tokens: dict[str, Token] = {}  # issued JWT -> Token: a token missing here is revoked
        self.jwt_key = secrets.token_bytes(32)  # HS256 key that signs and checks access tokens
        self.used_jti: dict[str, int] = {}  # "client:jti" -> expiry
        self.faults: list[FaultRule] = []
        self.raw_rules: list[RawRule] = []
        self.next_rule_id = 1
        self.stats_reset()
        if persist_path and os.path.exists(persist_path):
            self._load()

    # -- vault ----------------------------------------------------------------------------

    def recovery_level(self) -> str:
        v = self.vault
        if not v.soft_delete:
            return "Purgeable"
        level = "CustomizedRecoverable" if v.retention_days < 90 else "Recoverable"
        return level if v.purge_protection else level + "+Purgeable"

    def update_vault(self, changes: dict) -> dict:
        with self.lock:
            new = dataclasses.replace(self.vault)  # validate a copy; commit only if all is well
            for k, val in changes.items():
                if k not in VaultProps.__dataclass_fields__:
                    raise admin_error(400, f"unknown vault property {k!r}")
                current = getattr(new, k)
                if isinstance(current, bool):
                    if not isinstance(val, bool):
                        raise admin_error(400, f"{k} must be true or false")
                elif isinstance(current, int):
                    if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                        raise admin_error(400, f"{k} must be a positive integer")
                elif not isinstance(val, str):
                    raise admin_error(400, f"{k} must be a string")
                setattr(new, k, val)
            if not 7 <= new.retention_days <= 90:
                raise admin_error(400, "retention_days must be 7..90")
            if new.disabled_get not in ("ok", "forbidden"):
                raise admin_error(400, "disabled_get must be ok or forbidden")
            if not re.fullmatch(r"[A-Za-z]{1,64}", new.policy_denied_code):
                raise admin_error(400, "policy_denied_code must be a word such as ForbiddenByPolicy or AccessDenied")
            self.vault = new
            self.save()
            return self.vault_summary()

    def vault_summary(self) -> dict:
        return dict(self.vault.__dict__, recovery_level=self.recovery_level())

    # -- keys -----------------------------------------------------------------------------

    @staticmethod
    def _new_version(kty: str, size: int | None, key_ops, enabled=True, nbf=None, exp=None) -> KeyVersion:
        if kty not in KEY_TYPES:
            raise admin_error(400, f"kty must be one of {', '.join(KEY_TYPES)}")
        if kty == "oct-HSM":
            size = size or 256
            if size not in AES_SIZES:
                raise admin_error(400, "oct-HSM size must be 128, 192 or 256")
            material = os.urandom(size // 8)
            default_ops = ["wrapKey", "unwrapKey", "encrypt", "decrypt"]
        else:
            size = size or 2048
            if size not in RSA_SIZES:
                raise admin_error(400, "RSA size must be 2048, 3072 or 4096")
            material = rsa.generate_private_key(public_exponent=65537, key_size=size)
            default_ops = list(ALL_KEY_OPS)
        ops = list(default_ops if key_ops is None else key_ops)
        if any(op not in ALL_KEY_OPS for op in ops):
            raise admin_error(400, f"key_ops must be drawn from {', '.join(ALL_KEY_OPS)}")
        for name, val in (("nbf", nbf), ("exp", exp)):
            if val is not None and (not isinstance(val, int) or isinstance(val, bool)):
                raise admin_error(400, f"{name} must be an integer epoch")
        return KeyVersion(version=uuid.uuid4().hex, kty=kty, size=size, key_ops=ops, material=material,
                          enabled=bool(enabled), nbf=nbf, exp=exp)

    def create_key(self, name: str, kty="RSA", size=None, key_ops=None, enabled=True, nbf=None, exp=None,
                   managed_hsm=None) -> tuple[KeyRecord, KeyVersion]:
        if not isinstance(name, str) or not KEY_NAME_RE.match(name):
            raise admin_error(400, "key name must be 1-127 characters of 0-9, a-z, A-Z and -")
        kv = self._new_version(kty, size, key_ops, enabled, nbf, exp)  # RSA generation outside the lock
        with self.lock:
            rec = self.keys.get(name.lower())
            if rec is not None:
                if rec.deleted is not None:
                    raise admin_error(409, f"Key {name} is currently in a deleted but recoverable state, and its "
                                           "name cannot be reused; in this state, the key can only be recovered "
                                           "or purged.", "Conflict")
                raise admin_error(409, f"key {name} exists; use new-version")
            hsm = (kty == "oct-HSM") if managed_hsm is None else bool(managed_hsm)
            if kty == "oct-HSM" and not hsm:
                raise admin_error(400, "oct-HSM keys exist only in Managed HSM")
            if kty == "RSA" and hsm:
                raise admin_error(400, "Managed HSM keys are HSM keys: use kty RSA-HSM")
            rec = KeyRecord(name=name, managed_hsm=hsm)
            rec.versions[kv.version] = kv
            self.keys[name.lower()] = rec
            self.save()
            return rec, kv

    def add_version(self, name: str, size=None, key_ops=None, enabled=True, nbf=None, exp=None):
        with self.lock:
            rec = self._live_record(name)
            template = rec.latest
        kv = self._new_version(template.kty, size or template.size,
                               template.key_ops if key_ops is None else key_ops, enabled, nbf, exp)
        with self.lock:
            rec = self._live_record(name)
            rec.versions[kv.version] = kv
            self.save()
            return rec, kv

    def _live_record(self, name: str) -> KeyRecord:
        rec = self.keys.get(str(name).lower())
        if rec is None or rec.deleted is not None:
            raise admin_error(404, f"no key {name}")
        return rec

    def set_attributes(self, name: str, version: str, changes: dict):
        with self.lock:
            rec = self._live_record(name)
            kv = rec.latest if version == "latest" else rec.versions.get(version.lower())
            if kv is None:
                raise admin_error(404, f"no version {version} of key {name}")
            for k, val in changes.items():  # validate everything before changing anything
                if k == "enabled" and not isinstance(val, bool):
                    raise admin_error(400, "enabled must be true or false")
                if k in ("nbf", "exp") and val is not None and (not isinstance(val, int) or isinstance(val, bool)):
                    raise admin_error(400, f"{k} must be an integer epoch or null")
                if k == "key_ops" and (not isinstance(val, list) or any(op not in ALL_KEY_OPS for op in val)):
                    raise admin_error(400, f"key_ops must be a list drawn from {', '.join(ALL_KEY_OPS)}")
                if k not in ("enabled", "nbf", "exp", "key_ops"):
                    raise admin_error(400, f"unknown attribute {k!r}")
            for k, val in changes.items():
                setattr(kv, k, list(val) if k == "key_ops" else val)
            kv.updated = now()
            self.save()
            return rec, kv

    def delete_key(self, name: str) -> dict:
        with self.lock:
            rec = self._live_record(name)
            if self.vault.soft_delete:
                rec.deleted = now()
                result = {"deleted": rec.name, "recoverable": True,
                          "scheduledPurgeDate": rec.deleted + self.vault.retention_days * 86400}
            else:
                del self.keys[rec.name.lower()]
                result = {"deleted": rec.name, "recoverable": False}
            self.save()
            return result

    def recover_key(self, name: str) -> KeyRecord:
        with self.lock:
            rec = self.keys.get(name.lower())
            if rec is None or rec.deleted is None:
                raise admin_error(404, f"Deleted Key not found: {name}", "KeyNotFound")
            rec.deleted = None
            self.save()
            return rec

    def purge_key(self, name: str) -> dict:
        with self.lock:
            rec = self.keys.get(name.lower())
            if rec is None or rec.deleted is None:
                raise admin_error(404, f"Deleted Key not found: {name}", "KeyNotFound")
            if self.vault.purge_protection:
                raise kv_error(403, "Forbidden", f"Operation \"purge\" is not allowed because purge protection "
                                                 f"is enabled for this vault. Key {name} will be purged "
                                                 "automatically after the retention period.")
            del self.keys[name.lower()]
            self.save()
            return {"purged": rec.name}

    def key_summary(self, rec: KeyRecord) -> dict:
        return {"name": rec.name, "managed_hsm": rec.managed_hsm, "deleted": rec.deleted,
                "versions": [{"version": v.version, "kty": v.kty, "size": v.size, "key_ops": v.key_ops,
                              "enabled": v.enabled, "nbf": v.nbf, "exp": v.exp, "created": v.created,
                              "updated": v.updated} for v in rec.versions.values()]}

    # -- clients, grants, tokens ------------------------------------------------------------

    def upsert_client(self, spec: dict) -> Client:
        cid = spec.get("client_id")
        if not isinstance(cid, str) or not cid or not re.match(r"^[\w.@:-]{1,128}$", cid):
            raise admin_error(400, "client_id required (letters, digits, . _ - @ :)")
        for k in ("secret", "federated_token", "certificate_pem"):
            if spec.get(k) is not None and not isinstance(spec[k], str):
                raise admin_error(400, f"{k} must be a string")
        certs = []
        if spec.get("certificate_pem"):
            try:
                certs.append(ClientCert.from_pem(spec["certificate_pem"]))
            except ValueError as e:
                raise admin_error(400, f"bad certificate: {e}")
            if not isinstance(certs[0].public_key, rsa.RSAPublicKey):
                raise admin_error(400, "client certificates must have RSA keys (PS256/RS256)")
        with self.lock:
            client = self.clients.get(cid) or Client(client_id=cid)
            if "secret" in spec:
                client.secret = spec["secret"]
            client.certs.extend(c for c in certs if c.sha256 not in {x.sha256 for x in client.certs})
            tok = spec.get("federated_token")
            if tok and tok not in client.federated_tokens:
                client.federated_tokens.append(tok)
            for flag in ("managed_identity", "system_assigned", "enabled"):
                if flag in spec:
                    setattr(client, flag, bool(spec[flag]))
            if client.system_assigned:
                client.managed_identity = True
                for other in self.clients.values():
                    if other is not client:
                        other.system_assigned = False
            self.clients[cid] = client
            self.save()
            return client

    def remove_client(self, cid: str) -> None:
        with self.lock:
            if self.clients.pop(cid, None) is None:
                raise admin_error(404, f"no client {cid}")
            self.revoke_tokens(cid)
            for k in [k for k in self.grants if k[0] == cid]:
                del self.grants[k]
            self.save()

    def grant(self, cid: str, key: str, perms, revoke=False) -> dict:
        perms = list(PERMISSIONS) if perms is None else list(perms)
        if any(p not in PERMISSIONS for p in perms):
            raise admin_error(400, f"permissions are {', '.join(PERMISSIONS)}")
        if key != "*" and not KEY_NAME_RE.match(str(key)):
            raise admin_error(400, "key must be a key name or *")
        with self.lock:
            if cid not in self.clients:
                raise admin_error(404, f"no client {cid}")
            if revoke and key != "*":
                wide = set(perms) & self.grants.get((cid, "*"), set())
                if wide:  # a per-key revoke cannot narrow a vault-wide grant: say so
                    raise admin_error(409, f"{cid} holds {', '.join(sorted(wide))} on every key (*); revoke "
                                           "them on * and grant per key instead")
            current = self.grants.setdefault((cid, key.lower()), set())
            (current.difference_update if revoke else current.update)(perms)
            if not current:
                del self.grants[(cid, key.lower())]
            self.save()
            return self.grants_of(cid)

    def grants_of(self, cid: str) -> dict:
        return {k[1]: sorted(v) for k, v in self.grants.items() if k[0] == cid}

    def has_permission(self, cid: str, key: str, perm: str) -> bool:
        with self.lock:
            return any(perm in self.grants.get((cid, k), ()) for k in (key.lower(), "*"))

    def issue_token(self, cid: str, resource: str, lifetime: int | None = None) -> tuple[str, Token]:
        """A JWT access token shaped like Entra's v1 tokens for Key Vault [15], signed HS256."""
        with self.lock:
            t = now()
            tok = Token(client_id=cid, resource=resource, expires=t + (lifetime or self.vault.token_lifetime))
            client = self.clients.get(cid)
            oid = client.object_id if client else str(uuid.UUID(int=0))
            claims = {"aud": resource, "iss": f"https://sts.windows.net/{self.tenant}/", "iat": t, "nbf": t,
                      "exp": tok.expires, "appid": cid, "oid": oid, "sub": oid, "tid": self.tenant,
                      "idtyp": "app", "ver": "1.0", "uti": b64url(os.urandom(16))}
            value = jwt_encode({"typ": "JWT", "alg": "HS256", "kid": "kvserver"}, claims, self.jwt_key)
            self.tokens[value] = tok
            self._expire_tokens()
            self.save()
            return value, tok

    def check_token(self, value: str) -> dict:
        """The claims of a token this server signed, or ValueError (malformed or bad signature)."""
        return jwt_decode_hs256(value, self.jwt_key)

    def _expire_tokens(self) -> None:
        t = now()
        if len(self.tokens) > 1000:
            for k in [k for k, v in self.tokens.items() if v.expires < t]:
                del self.tokens[k]
        while len(self.tokens) > MAX_TOKENS:  # bounded: the oldest live tokens count as revoked
            del self.tokens[next(iter(self.tokens))]
        for k in [k for k, e in self.used_jti.items() if e < t - CLOCK_SKEW]:
            del self.used_jti[k]

    def lookup_token(self, value: str) -> Token | None:
        with self.lock:
            return self.tokens.get(value)

    def revoke_tokens(self, cid: str) -> int:
        with self.lock:
            doomed = [k for k, v in self.tokens.items() if v.client_id == cid]
            for k in doomed:
                del self.tokens[k]
            self.save()
            return len(doomed)

    def use_jti(self, cid: str, jti: str, exp: int) -> bool:
        """Records a client assertion's jti; False if it was seen before (a replay)."""
        with self.lock:
            key = f"{cid}:{jti}"
            if key in self.used_jti:
                return False
            self.used_jti[key] = exp
            return True

    def managed_identity(self, client_id: str | None) -> Client | None:
        with self.lock:
            mis = [c for c in self.clients.values() if c.managed_identity and c.enabled]
            if client_id:
                return next((c for c in mis if c.client_id == client_id or c.object_id == client_id), None)
            system = [c for c in mis if c.system_assigned]
            if system:
                return system[0]
            return mis[0] if len(mis) == 1 else None

    # -- faults and hostile responses -------------------------------------------------------

    def add_fault(self, spec: dict) -> FaultRule:
        pattern = spec.get("pattern")
        try:
            re.compile(pattern)
        except (re.error, TypeError):
            raise admin_error(400, "pattern must be a regular expression matched against the path")
        rule = FaultRule(id=0, pattern=pattern)
        for k in ("method", "status", "retry_after", "body", "latency_ms", "drop", "hang", "hang_seconds",
                  "probability"):
            if spec.get(k) is not None:
                setattr(rule, k, spec[k])
        if rule.retry_after is not None:
            rule.retry_after = str(rule.retry_after)
        if rule.status is not None and not (isinstance(rule.status, int) and 100 <= rule.status <= 599):
            raise admin_error(400, "status must be 100..599")
        if not (rule.status or rule.drop or rule.hang or rule.latency_ms):
            raise admin_error(400, "a fault needs status, drop, hang or latency_ms")
        if spec.get("count") is not None:
            rule.remaining = int(spec["count"])
        if spec.get("seconds") is not None:
            rule.until = time.time() + float(spec["seconds"])
        if rule.remaining is None and rule.until is None and rule.probability is None:
            rule.remaining = 1  # default: the next matching request only
        with self.lock:
            rule.id = self.next_rule_id
            self.next_rule_id += 1
            self.faults.append(rule)
            return rule

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        """The first live fault matching this request, consuming one use of it."""
        with self.lock:
            t = time.time()
            self.faults = [r for r in self.faults
                           if (r.remaining is None or r.remaining > 0) and (r.until is None or r.until > t)]
            for r in self.faults:
                if r.method and r.method.upper() != method:
                    continue
                if not re.search(r.pattern, path):
                    continue
                if r.probability is not None and random.random() >= r.probability:
                    continue
                if r.remaining is not None:
                    r.remaining -= 1
                r.applied += 1
                return r
            return None

    def add_raw(self, rule: RawRule) -> RawRule:
        with self.lock:
            rule.id = self.next_rule_id
            self.next_rule_id += 1
            self.raw_rules.append(rule)
            return rule

    def take_raw(self, method: str, path: str) -> RawRule | None:
        with self.lock:
            self.raw_rules = [r for r in self.raw_rules if r.remaining is None or r.remaining > 0]
            for r in self.raw_rules:
                if (not r.method or r.method.upper() == method) and re.search(r.pattern, path):
                    if r.remaining is not None:
                        r.remaining -= 1
                    r.applied += 1
                    return r
            return None

    def clear_faults(self, raw_too: bool = True) -> dict:
        with self.lock:
            n, m = len(self.faults), len(self.raw_rules)
            self.faults = []
            if raw_too:
                self.raw_rules = []
            return {"cleared_faults": n, "cleared_raw": m if raw_too else 0}

    # -- statistics -------------------------------------------------------------------------

    def stats_reset(self) -> None:
        self.stats_lock = getattr(self, "stats_lock", threading.Lock())
        with self.stats_lock:
            self.since = time.time()
            self.op_count: Counter = Counter()
            self.op_status: dict[str, Counter] = {}
            self.client_count: Counter = Counter()
            self.faults_applied: Counter = Counter()
            self.conn_count: Counter = Counter()  # connections with a non-admin request: "https", "http"

    def record_connection(self, kind: str) -> None:
        with self.stats_lock:
            self.conn_count[kind] += 1

    def record(self, op: str, status: str, client: str | None, fault: str | None) -> None:
        with self.stats_lock:
            self.op_count[op] += 1
            self.op_status.setdefault(op, Counter())[status] += 1
            if client:
                self.client_count[client] += 1
            if fault:
                self.faults_applied[fault] += 1

    def stats(self) -> dict:
        with self.stats_lock:
            return {"since": self.since, "total": sum(self.op_count.values()), "ops": dict(self.op_count),
                    "by_status": {op: dict(c) for op, c in self.op_status.items()},
                    "by_client": dict(self.client_count), "faults_applied": dict(self.faults_applied),
                    "connections": dict(self.conn_count)}

    # -- persistence (--persist) ------------------------------------------------------------

    def save(self) -> None:
        if not self.persist_path:
            return
        with self.lock:
            keys = []
            for rec in self.keys.values():
                versions = []
                for v in rec.versions.values():
                    if v.is_rsa:
                        material = v.material.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()).decode()
                    else:
                        material = v.material.hex()
                    versions.append(dict(version=v.version, kty=v.kty, size=v.size, key_ops=v.key_ops,
                                         material=material, enabled=v.enabled, nbf=v.nbf, exp=v.exp,
                                         created=v.created, updated=v.updated, tags=v.tags))
                keys.append({"name": rec.name, "managed_hsm": rec.managed_hsm, "deleted": rec.deleted,
                             "rotation_policy": rec.rotation_policy, "versions": versions})
            clients = [dict(c.__dict__, certs=[x.pem for x in c.certs]) for c in self.clients.values()]
            doc = {"tenant": self.tenant, "vault": self.vault.__dict__, "keys": keys, "clients": clients,
                   "jwt_key": self.jwt_key.hex(),
                   "grants": [[c, k, sorted(p)] for (c, k), p in self.grants.items()],
                   "tokens": {k: t.__dict__ for k, t in self.tokens.items()}}
            write_atomic(self.persist_path, json.dumps(doc, indent=1).encode(), 0o600)

    def _load(self) -> None:
        with open(self.persist_path, encoding="utf-8") as f:
            doc = json.load(f)
        self.tenant = doc["tenant"]
        self.vault = VaultProps(**doc["vault"])
        if doc.get("jwt_key"):
            self.jwt_key = bytes.fromhex(doc["jwt_key"])
        for k in doc["keys"]:
            rec = KeyRecord(name=k["name"], managed_hsm=k["managed_hsm"], deleted=k["deleted"],
                            rotation_policy=k.get("rotation_policy"))
            for v in k["versions"]:
                if v["kty"].startswith("RSA"):
                    v["material"] = serialization.load_pem_private_key(v["material"].encode(), None)
                else:
                    v["material"] = bytes.fromhex(v["material"])
                rec.versions[v["version"]] = KeyVersion(**v)
            self.keys[rec.name.lower()] = rec
        for c in doc["clients"]:
            c["certs"] = [ClientCert.from_pem(p) for p in c["certs"]]
            self.clients[c["client_id"]] = Client(**c)
        self.grants = {(c, k): set(p) for c, k, p in doc["grants"]}
        self.tokens = {k: Token(**t) for k, t in doc["tokens"].items()}


# --------------------------------------------------------------------------------------
# Cryptography of wrapkey / unwrapkey [5]
# --------------------------------------------------------------------------------------


def _rsa_padding(alg: str):
    if alg == "RSA1_5":
        return padding.PKCS1v15()
    h = hashes.SHA256() if alg == "RSA-OAEP-256" else hashes.SHA1()
    return padding.OAEP(mgf=padding.MGF1(algorithm=h), algorithm=h, label=None)


def check_alg(kv: KeyVersion, alg) -> None:
    allowed = RSA_ALGS if kv.is_rsa else (f"A{kv.size}KW",)
    if alg not in allowed:
        raise bad_parameter(f"Algorithm {alg!r} is not supported for key type {kv.kty} "
                            f"(supported: {', '.join(allowed)}).")


def wrap(kv: KeyVersion, alg: str, data: bytes) -> bytes:
    if kv.is_rsa:
        pub = kv.material.public_key()
        k = (pub.key_size + 7) // 8
        limit = {"RSA-OAEP-256": k - 66, "RSA-OAEP": k - 42, "RSA1_5": k - 11}[alg]
        if len(data) > limit:
            raise bad_parameter(f"The value is too long for {alg} with a {pub.key_size}-bit key "
                                f"(at most {limit} bytes).")
        return pub.encrypt(data, _rsa_padding(alg))
    try:
        return keywrap.aes_key_wrap(kv.material, data)
    except ValueError:
        raise bad_parameter("The value to wrap must be at least 16 bytes and a multiple of 8 bytes for AES-KW.")


def unwrap(kv: KeyVersion, alg: str, data: bytes) -> bytes:
    if kv.is_rsa:
        k = (kv.material.key_size + 7) // 8
        if len(data) != k:
            raise bad_parameter(f"The wrapped value must be exactly {k} bytes for this key.")
        try:
            return kv.material.decrypt(data, _rsa_padding(alg))
        except ValueError:
            raise bad_parameter("Unwrap failed: the value was not wrapped with this key and algorithm.")
    try:
        return keywrap.aes_key_unwrap(kv.material, data)
    except (ValueError, keywrap.InvalidUnwrap):
        raise bad_parameter("Unwrap failed: the value was not wrapped with this key and algorithm.")


def aes_gcm(kv: KeyVersion, req: dict, value: bytes, encrypt: bool) -> dict:
    """Managed HSM encrypt/decrypt with an oct-HSM key: A{size}GCM, the service picks the
    12-byte iv and returns it with the 16-byte tag [5]."""
    alg = f"A{kv.size}GCM"
    if req.get("alg") != alg:
        raise bad_parameter(f"Algorithm {req.get('alg')!r} is not supported for encrypt/decrypt with this key "
                            f"(supported: {alg}).")
    try:
        aad = b64url_decode(req["aad"]) if req.get("aad") else None
        if encrypt:
            iv = os.urandom(12)
            sealed = AESGCM(kv.material).encrypt(iv, value, aad)
            return {"value": b64url(sealed[:-16]), "iv": b64url(iv), "tag": b64url(sealed[-16:])}
        iv, tag = b64url_decode(req.get("iv")), b64url_decode(req.get("tag"))
        return {"value": b64url(AESGCM(kv.material).decrypt(iv, value + tag, aad))}
    except (ValueError, TypeError, InvalidTag):
        raise bad_parameter("Decryption failed: iv, tag, aad or value do not match this key.")


# --------------------------------------------------------------------------------------
# Hostile responses (admin "raw"): presets for client fuzzing
# --------------------------------------------------------------------------------------

RAW_PRESETS = ("invalid-json", "huge", "bad-base64", "wrong-key-size", "redirect", "empty", "html")


def raw_preset(preset: str, size: int | None) -> tuple[int, bytes, list]:
    kid = "https://127.0.0.1/keys/hostile/00000000000000000000000000000000"
    js = [("Content-Type", "application/json; charset=utf-8")]
    if preset == "invalid-json":
        return 200, b'{"key": {"kid": "https://', js
    if preset == "huge":
        n = size or 16 << 20
        return 200, b'{"kid": "' + kid.encode() + b'", "value": "' + b"A" * n + b'"}', js
    if preset == "bad-base64":
        return 200, json.dumps({"kid": kid, "value": "!!not+base64/url!!"}).encode(), js
    if preset == "wrong-key-size":
        return 200, json.dumps({"kid": kid, "value": b64url(os.urandom(size or 31))}).encode(), js
    if preset == "redirect":
        return 302, b"", [("Location", "https://127.0.0.1:1/redirected")]
    if preset == "empty":
        return 200, b"", js
    if preset == "html":
        return 502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", [("Content-Type", "text/html")]
    raise admin_error(400, f"preset must be one of {', '.join(RAW_PRESETS)}")


# --------------------------------------------------------------------------------------
# The request handler
# --------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the Azure SDKs use it
    server_version = "kvserver/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this

    def log_message(self, fmt, *args):  # replaced by our own request log
        pass

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.server.state

    @property
    def host(self) -> str:
        """The host:port the client connected to: key ids and challenges use it."""
        h = (self.headers.get("Host") or "").strip()
        return h if h and HOST_RE.match(h) else f"127.0.0.1:{self.server.server_address[1]}"

    def _dispatch(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        self.req_path = url.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.op, self.client, self.fault_note, self.status_note = "other", None, None, None
        self.admin = False
        try:
            if not self.server.plain and self.server.flavour == "vault" and self.req_path.startswith("/admin/"):
                self.admin = True
                self._admin(self._read_body())
                return
            self.op = self._classify()
            body = self._read_body()
            if self._hostile() or self._fault():
                return
            if self.server.plain:
                self._route_plain()
            else:
                self._route_tls(body)
        except HttpError as e:
            self._send(e.status, e.body, e.headers)
        except (ConnectionError, ssl.SSLError, socket.timeout):
            self.close_connection = True
            self.status_note = self.status_note or "ABORTED"
        except Exception:  # a bug: report it, keep serving
            traceback.print_exc()
            self._send(500, {"error": {"code": "InternalServerError", "message": "kvserver internal error"}})
        finally:
            if not self.admin:
                if not getattr(self, "conn_counted", False):  # one handler per connection
                    self.conn_counted = True
                    self.state.record_connection("http" if self.server.plain else "https")
                self.server.log_request_line(self, time.monotonic() - started)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise kv_error(411, "LengthRequired", "Send a Content-Length; chunked bodies are not supported.")
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            raise kv_error(413, "RequestTooLarge", "The request body is too large.")
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body=b"", headers=None, content_type="application/json; charset=utf-8") -> None:
        self.status_note = str(status)
        if isinstance(body, (dict, list)):
            data = json.dumps(body, separators=(",", ":")).encode()
        elif isinstance(body, str):
            data = body.encode()
        else:
            data = body or b""
        self.send_response(status)
        hdrs = {"Content-Type": content_type, "Cache-Control": "no-cache", "Pragma": "no-cache",
                "x-ms-request-id": str(uuid.uuid4())}
        if not self.server.plain:
            hdrs.update({"x-ms-keyvault-region": LOCATION, "x-ms-keyvault-service-version": "kvserver-1.0",
                         "Strict-Transport-Security": "max-age=31536000;includeSubDomains",
                         "X-Content-Type-Options": "nosniff"})
        echo = re.sub(r"[^\x21-\x7e]", "", self.headers.get("x-ms-client-request-id") or "")[:128]
        if echo:  # Key Vault echoes the client's request id
            hdrs["x-ms-client-request-id"] = echo
        hdrs.update(headers or {})
        if not data and status in (204, 302, 304):
            hdrs.pop("Content-Type", None)
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _query(self, name: str) -> str | None:
        return self.query.get(name)

    # -- request classification, hostile responses and faults -------------------------------

    def _classify(self) -> str:
        p, m = self.req_path, self.command
        if self.server.plain:
            if p.rstrip("/") == "/metadata/identity/oauth2/token":
                return "imds_token"
            if p.rstrip("/").lower() == "/msi/token":
                return "appservice_token"
            if p.rstrip("/") == "/arc/metadata/identity/oauth2/token":
                return "arc_token"
            return "other"
        parts = p.split("/")
        if p.startswith("/keys/"):
            last = parts[-1].lower()
            if m == "POST" and last in ("wrapkey", "unwrapkey", "encrypt", "decrypt", "create", "rotate"):
                return {"wrapkey": "wrap_key", "unwrapkey": "unwrap_key"}.get(last, last + "_key")
            if last in ("versions", "rotationpolicy"):
                return f"{'get' if m == 'GET' else 'set'}_{last}" if last == "rotationpolicy" else "list_versions"
            return {"GET": "get_key", "PUT": "import_key", "PATCH": "update_key",
                    "DELETE": "delete_key"}.get(m, "keys_other")
        if p.rstrip("/") == "/keys":
            return "list_keys"
        if p.startswith("/deletedkeys"):
            if p.rstrip("/") == "/deletedkeys":
                return "list_deleted_keys"
            return {"GET": "get_deleted_key", "POST": "recover_key", "DELETE": "purge_key"}.get(m, "keys_other")
        if m == "POST" and p.endswith("/oauth2/v2.0/token"):
            return "token"
        if p.endswith("/.well-known/openid-configuration"):
            return "openid_configuration"
        if p.startswith("/common/discovery/instance"):
            return "instance_discovery"
        return "other"

    def _hostile(self) -> bool:
        rule = self.state.take_raw(self.command, self.req_path)
        if rule is None:
            return False
        self.fault_note = f"raw#{rule.id}"
        headers = list(rule.headers)
        names = {k.lower() for k, _ in headers}
        self.send_response(rule.status)
        for k, v in headers:
            self.send_header(k, v)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(rule.body)))
        else:
            self.close_connection = True  # a lying Content-Length poisons the connection
        if "content-type" not in names and rule.body:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.end_headers()
        self.wfile.write(rule.body)
        self.status_note = str(rule.status)
        return True

    def _fault(self) -> bool:
        rule = self.state.take_fault(self.command, self.req_path)
        if rule is None:
            return False
        self.fault_note = f"fault#{rule.id}"
        if rule.latency_ms:
            time.sleep(rule.latency_ms / 1000)
        if rule.hang:
            self._hang(float(rule.hang_seconds))
            return True
        if rule.drop:
            self._drop()
            return True
        if not rule.status:
            return False  # latency only: carry on normally
        headers = {"Retry-After": rule.retry_after} if rule.retry_after is not None else {}
        if rule.body is not None:
            body = rule.body
        else:
            code, message = {
                429: ("Throttled", "Request was not processed because too many requests were received. "
                                   "(kvserver injected fault)"),
                500: ("InternalServerError", "An internal server error occurred. (kvserver injected fault)"),
                503: ("ServiceUnavailable", "The service is temporarily unavailable. (kvserver injected fault)"),
            }.get(rule.status, ("InjectedFault", f"kvserver injected status {rule.status}"))
            body = {"error": {"code": code, "message": message}}
        self._send(rule.status, body, headers)
        return True

    def _drop(self) -> None:
        """Close the connection without a response (and without a TLS close_notify)."""
        self.status_note = "DROP"
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hang(self, max_seconds: float) -> None:
        """Send nothing until the client gives up (closes) or max_seconds pass."""
        self.status_note = "HANG"
        self.close_connection = True
        deadline = time.monotonic() + max_seconds
        sock = self.connection
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.25)
                if r and not sock.recv(4096):
                    break  # the client closed its end
            except (ssl.SSLWantReadError, socket.timeout):
                continue
            except (OSError, ValueError):
                break

    # -- plain HTTP port: managed-identity token endpoints [11] [12] -----------------------

    def _route_plain(self) -> None:
        if self.command != "GET":
            raise HttpError(405, {"error": "invalid_request", "error_description": "Use GET."})
        if self.op == "imds_token":
            return self._imds_token()
        if self.op == "appservice_token":
            return self._appservice_token()
        if self.op == "arc_token":
            return self._arc_token()
        raise HttpError(404, {"error": "not_found", "error_description": f"No endpoint {self.req_path}"})

    def _mi_resource(self) -> tuple[str, str]:
        requested = self._query("resource")
        if not requested:
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Required audience parameter not specified"})
        resource = requested.rstrip("/")
        if resource not in RESOURCES:
            raise HttpError(400, {"error": "invalid_resource",
                                  "error_description": f"AADSTS500011: The resource principal named {requested} "
                                                       f"was not found in the tenant named {self.state.tenant}."})
        return requested, resource

    def _mi_identity(self) -> Client:
        wanted = self._query("client_id") or self._query("object_id") or self._query("principal_id")
        if self._query("mi_res_id") and not wanted:
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "mi_res_id is not supported by kvserver; use client_id"})
        ident = self.state.managed_identity(wanted)
        if ident is None:
            raise HttpError(400, {"error": "invalid_request", "error_description": "Identity not found"})
        self.client = ident.client_id
        return ident

    def _imds_token(self) -> None:
        if self.headers.get("Metadata") != "true":
            raise HttpError(400, {"error": "bad_request_102",
                                  "error_description": "Required metadata header not specified"})
        if not self._query("api-version"):
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Required query variable 'api-version' is missing"})
        requested, resource = self._mi_resource()
        ident = self._mi_identity()
        value, tok = self.state.issue_token(ident.client_id, resource)
        t = now()
        self._send(200, {"access_token": value, "refresh_token": "", "expires_in": str(tok.expires - t),
                         "expires_on": str(tok.expires), "ext_expires_in": str(tok.expires - t),
                         "not_before": str(t), "resource": requested, "token_type": "Bearer",
                         "client_id": ident.client_id})

    def _appservice_token(self) -> None:
        header = self.headers.get("X-IDENTITY-HEADER")
        if header is None:
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Required header X-IDENTITY-HEADER not specified"})
        if not hmac.compare_digest(header.encode(), self.server.identity_header.encode()):
            raise HttpError(401, {"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is not valid"})
        if self._query("api-version") != "2019-08-01":
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "api-version must be 2019-08-01"})
        requested, resource = self._mi_resource()
        ident = self._mi_identity()
        value, tok = self.state.issue_token(ident.client_id, resource)
        self._send(200, {"access_token": value, "expires_on": str(tok.expires), "not_before": str(now()),
                         "resource": requested, "token_type": "Bearer", "client_id": ident.client_id})

    def _arc_token(self) -> None:
        """Azure Arc (HIMDS) [17]: a request without credentials gets 401 and a fresh secret
        in a .key file named by "WWW-Authenticate: Basic realm=<path>"; the same request
        with "Authorization: Basic <contents>" gets the token. Each file answers once."""
        if self.headers.get("Metadata") != "true":
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Required metadata header not specified"})
        if not self._query("api-version"):
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Required query variable 'api-version' is missing"})
        auth = self.headers.get("Authorization")
        srv = self.server
        if auth is None:
            secret = secrets.token_hex(32)
            path = os.path.join(srv.arc_dir, secrets.token_hex(8) + ".key")
            write_atomic(path, secret.encode(), 0o600)
            with srv.arc_lock:
                srv.arc_pending[path] = secret
            raise HttpError(401, {"error": "unauthorized", "error_description": "Basic authentication required"},
                            {"WWW-Authenticate": f"Basic realm={path}"})
        given = auth[6:] if auth.startswith("Basic ") else ""
        with srv.arc_lock:
            match = next((p for p, v in srv.arc_pending.items()
                          if hmac.compare_digest(given.encode(), v.encode())), None)
            if match is not None:
                del srv.arc_pending[match]
        if match is None:
            raise HttpError(401, {"error": "unauthorized", "error_description": "Invalid Basic credential"})
        try:
            os.unlink(match)
        except OSError:
            pass
        if self._query("client_id") or self._query("object_id") or self._query("mi_res_id"):
            raise HttpError(400, {"error": "invalid_request",
                                  "error_description": "Azure Arc supports only the system-assigned identity"})
        requested, resource = self._mi_resource()
        ident = self._mi_identity()
        value, tok = self.state.issue_token(ident.client_id, resource)
        t = now()
        self._send(200, {"access_token": value, "expires_in": str(tok.expires - t),
                         "expires_on": str(tok.expires), "not_before": str(t), "resource": requested,
                         "token_type": "Bearer"})

    # -- HTTPS port -------------------------------------------------------------------------

    def _route_tls(self, body: bytes) -> None:
        if re.match(r"^/(keys|deletedkeys)(/|$)", self.req_path):
            return self._data_plane(body)
        tenant = self.state.tenant
        if self.op == "token":
            return self._entra_token(body)
        if self.op == "openid_configuration":
            # Enough OpenID metadata for MSAL-based SDKs pointed at this authority.
            t = self.req_path.split("/")[1]
            if t not in (tenant, "organizations", "common"):
                raise entra_error(400, "invalid_tenant", 90002, f"Tenant '{t}' not found.", self.host)
            base = f"https://{self.host}/{tenant}"
            return self._send(200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0", "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
                "response_types_supported": ["token"], "tenant_region_scope": None,
                "cloud_instance_name": "kvserver", "cloud_graph_host_name": "", "msgraph_host": ""})
        if self.op == "instance_discovery":
            return self._send(200, {
                "tenant_discovery_endpoint": f"https://{self.host}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": self.host, "preferred_cache": self.host,
                              "aliases": [self.host]}]})
        raise kv_error(404, "NotFound", f"kvserver has no endpoint {self.req_path}")

    # -- Entra ID token endpoint [9] [10] ---------------------------------------------------

    def _entra_token(self, body: bytes) -> None:
        st, host = self.state, self.host
        tenant = self.req_path.split("/")[1]
        if tenant != st.tenant:
            raise entra_error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure "
                              "you have the correct tenant ID and are signing into the correct cloud.", host)
        form = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        for required in ("grant_type", "client_id", "scope"):
            if not form.get(required):
                raise entra_error(400, "invalid_request", 900144,
                                  f"The request body must contain the following parameter: '{required}'.", host)
        if form["grant_type"] != "client_credentials":
            raise entra_error(400, "unsupported_grant_type", 70003,
                              f"The app requested an unsupported grant type '{form['grant_type']}'.", host)
        cid = form["client_id"]
        self.client = cid
        with st.lock:
            client = st.clients.get(cid)
        if client is None:
            raise entra_error(400, "unauthorized_client", 700016,
                              f"Application with identifier '{cid}' was not found in the directory "
                              f"'{st.tenant}'.", host)
        if not client.enabled:
            raise entra_error(400, "unauthorized_client", 7000112, f"Application '{cid}' is disabled.", host)
        scopes = form["scope"].split()
        resource = scopes[0][: -len("/.default")].rstrip("/") if scopes[0].endswith("/.default") else None
        if len(scopes) != 1 or resource is None:
            raise entra_error(400, "invalid_scope", 1002012,
                              f"The provided value for scope {form['scope']} is not valid. Client credential "
                              "flows must have a scope value with /.default suffixed to the resource "
                              "identifier (application ID URI).", host)
        if resource not in RESOURCES:
            raise entra_error(400, "invalid_resource", 500011,
                              f"The resource principal named {resource} was not found in the tenant named "
                              f"{st.tenant}.", host)

        if "client_secret" in form:
            if client.secret is None or not hmac.compare_digest(form["client_secret"].encode(),
                                                                client.secret.encode()):
                raise entra_error(401, "invalid_client", 7000215,
                                  "Invalid client secret provided. Ensure the secret being sent in the request "
                                  "is the client secret value, not the client secret ID, for a secret added to "
                                  f"app '{cid}'.", host)
        elif "client_assertion" in form:
            if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
                raise entra_error(400, "invalid_request", 70002,
                                  "client_assertion_type must be "
                                  "urn:ietf:params:oauth:client-assertion-type:jwt-bearer.", host)
            self._check_assertion(client, form["client_assertion"])
        else:
            raise entra_error(401, "invalid_client", 7000218, "The request body must contain the following "
                              "parameter: 'client_assertion' or 'client_secret'.", host)

        value, tok = st.issue_token(cid, resource)
        lifetime = tok.expires - now()
        self._send(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                         "access_token": value})

    def _check_assertion(self, client: Client, assertion: str) -> None:
        """Workload identity (a registered federated token) or a certificate-signed JWT [9]."""
        host, cid = self.host, client.client_id
        if any(hmac.compare_digest(assertion.encode(), t.encode()) for t in client.federated_tokens):
            return
        if not client.certs:
            if client.federated_tokens:
                raise entra_error(401, "invalid_client", 70021,
                                  "No matching federated identity record found for presented assertion.", host)
            raise entra_error(401, "invalid_client", 700027,
                              f"The certificate used to sign the client assertion is not registered on "
                              f"application '{cid}'.", host)
        try:
            h64, c64, s64 = assertion.split(".")
            header = json.loads(b64url_decode(h64))
            claims = json.loads(b64url_decode(c64))
            signature = b64url_decode(s64)
            if not isinstance(header, dict) or not isinstance(claims, dict):
                raise ValueError
        except ValueError:
            raise entra_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.", host)

        alg = header.get("alg")
        if alg not in ("PS256", "RS256"):
            raise entra_error(401, "invalid_client", 700027,
                              f"Client assertion contains an invalid signature. [Reason - alg {alg!r} is not "
                              "supported; use PS256 or RS256.]", host)
        # Thumbprints are compared as unpadded base64url; some clients (MSAL for Python) send
        # padded base64 and Entra accepts that.
        field_name, attr = ("x5t#S256", "sha256") if "x5t#S256" in header else ("x5t", "sha1")
        thumb = header.get(field_name)
        norm = str(thumb).rstrip("=").replace("+", "-").replace("/", "_")
        cert = next((c for c in client.certs if getattr(c, attr) == norm), None)
        if cert is None:
            raise entra_error(401, "invalid_client", 700027,
                              "The certificate with identifier used to sign the client assertion is not "
                              f"registered on application. [Reason - The key was not found., Thumbprint of "
                              f"key used by client: '{thumb}']", host)
        pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
               if alg == "PS256" else padding.PKCS1v15())
        try:
            cert.public_key.verify(signature, f"{h64}.{c64}".encode(), pad, hashes.SHA256())
        except InvalidSignature:
            raise entra_error(401, "invalid_client", 700027, "Client assertion contains an invalid signature.",
                              host)
        t = now()
        if not cert.not_before <= t <= cert.not_after:
            raise entra_error(401, "invalid_client", 700027, "Client assertion contains an invalid signature. "
                              "[Reason - The key used is expired.]", host)
        port = self.server.server_address[1]
        accepted = {f"https://{h}/{self.state.tenant}/oauth2/v2.0/token"
                    for h in (host, f"127.0.0.1:{port}", f"localhost:{port}")}
        aud = claims.get("aud")
        if aud not in accepted and not (isinstance(aud, list) and accepted.intersection(aud)):
            raise entra_error(401, "invalid_client", 700023,
                              "Client assertion audience claim does not match Realm issuer.", host)
        if claims.get("iss") != cid or claims.get("sub") != cid:
            raise entra_error(401, "invalid_client", 700021,
                              "Client assertion application identifier doesn't match 'client_id' parameter.", host)
        exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
        if (not isinstance(exp, (int, float)) or t > exp + CLOCK_SKEW
                or (isinstance(nbf, (int, float)) and nbf > t + CLOCK_SKEW)):
            raise entra_error(401, "invalid_client", 700024,
                              f"Client assertion is not within its valid time range. Current time: {t}, "
                              f"assertion valid from {nbf}, expiry time of assertion {exp}.", host)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise entra_error(401, "invalid_client", 50027, "JWT token is invalid or malformed: no jti claim.",
                              host)
        with self.state.lock:
            strict = self.state.vault.reject_assertion_replay
        if strict and not self.state.use_jti(cid, jti, int(exp)):
            raise entra_error(401, "invalid_client", 50027,
                              "JWT token is invalid: the client assertion (jti) was already used.", host)

    # -- Key Vault data plane [1] [2] [3] [4] [14] ------------------------------------------

    _N = r"([0-9A-Za-z-]{1,127})"
    _V = r"([0-9a-fA-F]{32})"
    # (method, path, handler, permission); the permission of a crypto operation is its name.
    KV_ROUTES = [
        ("GET", r"/keys/?", "_kv_list", "list"),
        ("GET", r"/deletedkeys/?", "_kv_list_deleted", "list"),
        ("GET", rf"/deletedkeys/{_N}/?", "_kv_get_deleted", "get"),
        ("POST", rf"/deletedkeys/{_N}/recover", "_kv_recover", "recover"),
        ("DELETE", rf"/deletedkeys/{_N}/?", "_kv_purge", "purge"),
        ("POST", rf"/keys/{_N}/create", "_kv_create", "create"),
        ("GET", rf"/keys/{_N}/versions", "_kv_versions", "list"),
        ("POST", rf"/keys/{_N}/rotate", "_kv_rotate", "rotate"),
        ("GET", rf"/keys/{_N}/rotationpolicy", "_kv_get_policy", "getrotationpolicy"),
        ("PUT", rf"/keys/{_N}/rotationpolicy", "_kv_set_policy", "setrotationpolicy"),
        ("PUT", rf"/keys/{_N}/?", "_kv_import", "import"),
        ("DELETE", rf"/keys/{_N}/?", "_kv_delete", "delete"),
        ("GET", rf"/keys/{_N}(?:/{_V}?)?/?", "_kv_get", "get"),
        ("PATCH", rf"/keys/{_N}(?:/{_V}?)?/?", "_kv_update", "update"),
        ("POST", rf"/keys/{_N}(?:/{_V}?)?/(wrapkey|unwrapkey|encrypt|decrypt)", "_kv_crypto", None),
    ]
    CRYPTO_PERMS = {"wrapkey": "wrapKey", "unwrapkey": "unwrapKey", "encrypt": "encrypt", "decrypt": "decrypt"}

    def _data_plane(self, body: bytes) -> None:
        st = self.state
        api = self._query("api-version")
        if not api:
            raise bad_parameter("The 'api-version' query parameter is required.")
        if api not in API_VERSIONS:
            raise bad_parameter(f"The specified version ({api}) is not recognized. Consider using the latest "
                                f"supported version ({API_VERSIONS[-1]}).")
        matched, allowed = None, []
        for method, pattern, fn, perm in self.KV_ROUTES:
            m = re.fullmatch(pattern, self.req_path, re.IGNORECASE)
            if m:
                allowed.append(method)
                if method == self.command and matched is None:
                    matched = (fn, perm, m.groups())
        if not allowed:
            raise kv_error(404, "NotFound", f"kvserver has no endpoint {self.req_path}")
        groups = matched[2] if matched else ()
        name = groups[0] if groups else None
        version = groups[1].lower() if len(groups) > 1 and groups[1] else None
        self.api = api

        # The audience: the Managed HSM host takes only Managed HSM tokens; the vault host takes
        # vault tokens, and Managed HSM tokens for Managed HSM keys made through the admin API.
        with st.lock:
            rec = st.keys.get(name.lower()) if name else None
            key_hsm = bool(rec and rec.managed_hsm)
        hsm = self.server.flavour == "hsm" or key_hsm
        cid = self._authenticate(HSM_RESOURCE if hsm else VAULT_RESOURCE)
        if matched is None:
            raise kv_error(405, "MethodNotAllowed", f"{self.command} is not allowed on {self.req_path} "
                           f"(allowed: {', '.join(sorted(set(allowed)))}).", headers={"Allow": ", ".join(allowed)})
        fn, perm, _ = matched
        if perm is None:
            perm = self.CRYPTO_PERMS[groups[-1].lower()]
        self._authorize(cid, name or "*", perm, "hsm" if hsm else "vault")
        req = None
        if self.command in ("POST", "PUT", "PATCH") and fn not in ("_kv_recover", "_kv_rotate"):
            try:
                req = json.loads(body or b"null")
            except ValueError:
                raise bad_parameter("The request body is not valid JSON.")
            if not isinstance(req, dict):
                raise bad_parameter("The request body must be a JSON object.")
        try:
            status, result = getattr(self, fn)(name, version, req, groups)
        except HttpError as e:  # the shared admin-API validators speak the admin's codes
            err = e.body.get("error") if isinstance(e.body, dict) else None
            if isinstance(err, dict) and err.get("code") == "BadRequest":
                err["code"] = "BadParameter"
            raise
        self._send(status, result)

    # helpers

    def _base(self) -> str:
        return f"https://{self.host}"

    def _visible(self, rec: KeyRecord | None) -> bool:
        return rec is not None and (self.server.flavour != "hsm" or rec.managed_hsm)

    @staticmethod
    def _not_found(shown: str) -> HttpError:
        return kv_error(404, "KeyNotFound", f"A key with (name/id) {shown} was not found in this key vault. "
                        "If you recently deleted this key you may be able to recover it using the correct "
                        "recovery command. For help resolving this issue, please see "
                        "https://go.microsoft.com/fwlink/?linkid=2125182")

    @staticmethod
    def _deleted_not_found(name: str) -> HttpError:
        return kv_error(404, "KeyNotFound", f"Deleted Key not found: {name}")

    def _live(self, name: str, version: str | None = None) -> tuple[KeyRecord, KeyVersion]:
        """Call with the state lock held."""
        rec = self.state.keys.get(name.lower())
        kv = None
        if self._visible(rec) and rec.deleted is None:
            kv = rec.versions.get(version) if version else rec.latest
        if kv is None:
            raise self._not_found(f"{name}/{version}" if version else name)
        return rec, kv

    def _deleted(self, name: str) -> KeyRecord:
        rec = self.state.keys.get(name.lower())
        if not self._visible(rec) or rec.deleted is None:
            raise self._deleted_not_found(name)
        return rec

    def _attributes(self, kv: KeyVersion) -> dict:
        st = self.state
        attrs = {"enabled": kv.enabled}
        if kv.nbf is not None:
            attrs["nbf"] = kv.nbf
        if kv.exp is not None:
            attrs["exp"] = kv.exp
        attrs.update(created=kv.created, updated=kv.updated, recoveryLevel=st.recovery_level())
        if st.vault.soft_delete:
            attrs["recoverableDays"] = st.vault.retention_days
        if api_at_least(self.api, "7.3"):
            attrs["exportable"] = False
        return attrs

    def _key_bundle(self, rec: KeyRecord, kv: KeyVersion) -> dict:
        kid = f"{self._base()}/keys/{rec.name}/{kv.version}"
        jwk = {"kid": kid, "kty": kv.kty, "key_ops": list(kv.key_ops)}
        if kv.is_rsa:
            pub = kv.material.public_key().public_numbers()
            jwk["n"], jwk["e"] = b64url(int_bytes(pub.n)), b64url(int_bytes(pub.e))
        out = {"key": jwk, "attributes": self._attributes(kv)}
        if kv.tags:
            out["tags"] = dict(kv.tags)
        return out

    def _deleted_fields(self, rec: KeyRecord) -> dict:
        return {"recoveryId": f"{self._base()}/deletedkeys/{rec.name}", "deletedDate": rec.deleted,
                "scheduledPurgeDate": rec.deleted + self.state.vault.retention_days * 86400}

    def _item(self, rec: KeyRecord, kv: KeyVersion, versioned: bool) -> dict:
        kid = f"{self._base()}/keys/{rec.name}" + (f"/{kv.version}" if versioned else "")
        out = {"kid": kid, "attributes": self._attributes(kv)}
        if kv.tags:
            out["tags"] = dict(kv.tags)
        return out

    def _page(self, items: list) -> dict:
        """One page of a list and the nextLink to the rest [14]."""
        raw = self._query("maxresults")
        try:
            size = PAGE_SIZE if raw in (None, "") else int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= PAGE_SIZE:
            raise bad_parameter(f"maxresults must be between 1 and {PAGE_SIZE}.")
        skip = self._query("$skiptoken")
        try:
            start = int(b64url_decode(skip).decode()) if skip else 0
        except (ValueError, UnicodeDecodeError):
            raise bad_parameter("The $skiptoken is not valid.")
        page = {"value": items[start:start + size], "nextLink": None}
        if start + size < len(items):
            token = b64url(str(start + size).encode())
            page["nextLink"] = (f"{self._base()}{self.req_path}?api-version={self.api}&$skiptoken={token}"
                                f"&maxresults={size}")
        return page

    @staticmethod
    def _tags(req: dict):
        tags = req.get("tags")
        if tags is None:
            return None
        if (not isinstance(tags, dict) or len(tags) > MAX_TAGS
                or any(not isinstance(k, str) or not isinstance(v, str) or len(k) > 512 or len(v) > 256
                       for k, v in tags.items())):
            raise bad_parameter(f"tags must be an object of at most {MAX_TAGS} string values (names up to 512 "
                                "characters, values up to 256).")
        return dict(tags)

    @staticmethod
    def _attr_changes(req: dict) -> dict:
        attrs = req.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise bad_parameter("attributes must be an object.")
        out = {}
        for k in ("enabled", "nbf", "exp"):
            if k not in attrs:
                continue
            v = attrs[k]
            if k == "enabled" and v is not None and not isinstance(v, bool):
                raise bad_parameter("attributes.enabled must be true or false.")
            if k != "enabled" and v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise bad_parameter(f"attributes.{k} must be a number of seconds since 1970.")
            if not (k == "enabled" and v is None):
                out[k] = v
        return out

    def _kty_for_host(self, kty, hsm_flag=False) -> str:
        """The key type this host stores for a requested kty (a vault stores RSA or RSA-HSM; a
        Managed HSM stores RSA-HSM and oct-HSM) [5]."""
        if kty in ("RSA", "RSA-HSM") and (hsm_flag or self.server.flavour == "hsm"):
            kty = "RSA-HSM"
        if kty in ("oct", "oct-HSM"):
            kty = "oct-HSM"
        if kty not in KEY_TYPES:
            raise bad_parameter(f"The key type {kty!r} is not supported by kvserver (RSA, RSA-HSM, oct-HSM).")
        if kty == "oct-HSM" and self.server.flavour != "hsm":
            raise bad_parameter("Key type oct-HSM is supported only by Managed HSM.")
        return kty

    def _store_version(self, name: str, kv: KeyVersion, hsm: bool) -> KeyRecord:
        """A new key, or a new version of a live one (create and import both add versions)."""
        st = self.state
        with st.lock:
            rec = st.keys.get(name.lower())
            if rec is not None and rec.deleted is not None and self._visible(rec):
                raise kv_error(409, "Conflict", f"Key {name} is currently in a deleted but recoverable state, "
                               "and its name cannot be reused; in this state, the key can only be recovered "
                               "or purged.")
            if rec is not None and rec.managed_hsm != hsm:
                raise kv_error(409, "Conflict", f"kvserver keeps one namespace for both hosts: {name} is "
                               "already a key on the other one.")
            if rec is None:
                if len(st.keys) >= MAX_KEYS:
                    raise kv_error(403, "Forbidden", f"kvserver holds at most {MAX_KEYS} keys.")
                rec = KeyRecord(name=name, managed_hsm=hsm)
                st.keys[name.lower()] = rec
            elif len(rec.versions) >= MAX_VERSIONS:
                raise kv_error(403, "Forbidden", f"kvserver holds at most {MAX_VERSIONS} versions of a key.")
            rec.versions[kv.version] = kv
            st.save()
            return rec

    # handlers: (name, version, request body, route groups) -> (status, body)

    def _kv_list(self, name, version, req, groups):
        with self.state.lock:
            items = [self._item(r, r.latest, False) for r in self.state.keys.values()
                     if r.deleted is None and r.managed_hsm == (self.server.flavour == "hsm")]
            return 200, self._page(items)

    def _kv_list_deleted(self, name, version, req, groups):
        with self.state.lock:
            items = [dict(self._item(r, r.latest, False), **self._deleted_fields(r))
                     for r in self.state.keys.values()
                     if r.deleted is not None and r.managed_hsm == (self.server.flavour == "hsm")]
            return 200, self._page(items)

    def _kv_versions(self, name, version, req, groups):
        with self.state.lock:
            rec, _ = self._live(name)
            return 200, self._page([self._item(rec, v, True) for v in rec.versions.values()])

    def _kv_get(self, name, version, req, groups):
        with self.state.lock:
            rec, kv = self._live(name, version)
            if not kv.enabled and self.state.vault.disabled_get == "forbidden":
                raise kv_error(403, "Forbidden", "Operation get is not allowed on a disabled key.", "KeyDisabled")
            return 200, self._key_bundle(rec, kv)

    def _kv_create(self, name, version, req, groups):
        hsm = self.server.flavour == "hsm"
        kty = self._kty_for_host(req.get("kty"))
        size = req.get("key_size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise bad_parameter("key_size must be a number.")
        if req.get("public_exponent") not in (None, 65537):
            raise bad_parameter("kvserver supports only the public exponent 65537.")
        attrs, tags = self._attr_changes(req), self._tags(req)
        kv = State._new_version(kty, size, req.get("key_ops"), attrs.get("enabled", True), attrs.get("nbf"),
                                attrs.get("exp"))
        kv.tags = tags or {}
        rec = self._store_version(name, kv, hsm)
        with self.state.lock:
            return 200, self._key_bundle(rec, kv)

    def _kv_import(self, name, version, req, groups):
        hsm = self.server.flavour == "hsm"
        jwk = req.get("key")
        if not isinstance(jwk, dict):
            raise bad_parameter("The request must carry the key as a JSON web key in 'key'.")
        if jwk.get("key_hsm"):
            raise bad_parameter("kvserver does not import BYOK (key_hsm) blobs.")
        kty = self._kty_for_host(jwk.get("kty"), bool(req.get("Hsm") or req.get("hsm")))
        try:
            if kty == "oct-HSM":
                material = b64url_decode(jwk.get("k"))
                size = len(material) * 8
                if size not in AES_SIZES:
                    raise ValueError
            else:
                n, e, d, p, q = (int.from_bytes(b64url_decode(jwk.get(f)), "big") for f in ("n", "e", "d", "p", "q"))
                pub = rsa.RSAPublicNumbers(e, n)
                material = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                                 rsa.rsa_crt_iqmp(p, q), pub).private_key()
                size = material.key_size
                if size not in RSA_SIZES:
                    raise ValueError
        except (ValueError, TypeError):
            raise bad_parameter("The JSON web key is not a valid private key kvserver can import "
                                "(RSA 2048/3072/4096 with n, e, d, p, q; or oct with k of 128/192/256 bits).")
        ops = jwk.get("key_ops")
        if ops is None:
            ops = ["wrapKey", "unwrapKey", "encrypt", "decrypt"] if kty == "oct-HSM" else list(ALL_KEY_OPS)
        if not isinstance(ops, list) or any(op not in ALL_KEY_OPS for op in ops):
            raise bad_parameter(f"key_ops must be drawn from {', '.join(ALL_KEY_OPS)}.")
        attrs, tags = self._attr_changes(req), self._tags(req)
        kv = KeyVersion(version=uuid.uuid4().hex, kty=kty, size=size, key_ops=list(ops), material=material,
                        enabled=attrs.get("enabled", True), nbf=attrs.get("nbf"), exp=attrs.get("exp"),
                        tags=tags or {})
        rec = self._store_version(name, kv, hsm)
        with self.state.lock:
            return 200, self._key_bundle(rec, kv)

    def _kv_update(self, name, version, req, groups):
        attrs, tags = self._attr_changes(req), self._tags(req)
        ops = req.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or any(op not in ALL_KEY_OPS for op in ops)):
            raise bad_parameter(f"key_ops must be drawn from {', '.join(ALL_KEY_OPS)}.")
        with self.state.lock:
            rec, kv = self._live(name, version)
            for k, v in attrs.items():
                setattr(kv, k, v)
            if ops is not None:
                kv.key_ops = list(ops)
            if tags is not None:
                kv.tags = tags
            kv.updated = now()
            self.state.save()
            return 200, self._key_bundle(rec, kv)

    def _kv_rotate(self, name, version, req, groups):
        with self.state.lock:
            rec, template = self._live(name)
            policy = rec.rotation_policy or {}
        expiry = (policy.get("attributes") or {}).get("expiryTime")
        exp = now() + parse_duration(expiry) if expiry else None
        kv = State._new_version(template.kty, template.size, template.key_ops, True, None, exp)
        kv.tags = dict(template.tags)
        rec = self._store_version(rec.name, kv, rec.managed_hsm)
        with self.state.lock:
            return 200, self._key_bundle(rec, kv)

    def _policy(self, rec: KeyRecord) -> dict:
        policy = rec.rotation_policy or {
            "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
            "attributes": {}}
        return dict(policy, id=f"{self._base()}/keys/{rec.name}/rotationpolicy")

    def _kv_get_policy(self, name, version, req, groups):
        with self.state.lock:
            rec, _ = self._live(name)
            return 200, self._policy(rec)

    def _kv_set_policy(self, name, version, req, groups):
        actions = req.get("lifetimeActions") or []
        attrs = req.get("attributes") or {}
        if not isinstance(actions, list) or not isinstance(attrs, dict) or len(actions) > 2:
            raise bad_parameter("lifetimeActions must be a list of at most two actions; attributes an object.")
        expiry = attrs.get("expiryTime")
        try:
            if expiry is not None and parse_duration(expiry) < 28 * 86400:
                raise bad_parameter("expiryTime must be at least 28 days (P28D).")
            clean = []
            for a in actions:
                trigger, action = (a or {}).get("trigger") or {}, ((a or {}).get("action") or {}).get("type")
                kinds = [k for k in ("timeAfterCreate", "timeBeforeExpiry") if trigger.get(k)]
                if str(action).lower() not in ("rotate", "notify") or len(kinds) != 1:
                    raise ValueError("each lifetime action needs a type (Rotate, Notify) and one trigger")
                parse_duration(trigger[kinds[0]])
                if kinds[0] == "timeBeforeExpiry" and expiry is None:
                    raise ValueError("timeBeforeExpiry needs attributes.expiryTime")
                clean.append({"trigger": {kinds[0]: trigger[kinds[0]]},
                              "action": {"type": "Rotate" if str(action).lower() == "rotate" else "Notify"}})
        except ValueError as e:
            raise bad_parameter(f"Invalid rotation policy: {e}")
        with self.state.lock:
            rec, _ = self._live(name)
            t = now()
            created = ((rec.rotation_policy or {}).get("attributes") or {}).get("created", t)
            new_attrs = {"created": created, "updated": t}
            if expiry is not None:
                new_attrs["expiryTime"] = expiry
            rec.rotation_policy = {"lifetimeActions": clean, "attributes": new_attrs}
            self.state.save()
            return 200, self._policy(rec)

    def _kv_delete(self, name, version, req, groups):
        st = self.state
        with st.lock:
            rec, kv = self._live(name)
            out = self._key_bundle(rec, kv)
            if st.vault.soft_delete:
                rec.deleted = now()
                out.update(self._deleted_fields(rec))
            else:
                del st.keys[rec.name.lower()]
            st.save()
            return 200, out

    def _kv_get_deleted(self, name, version, req, groups):
        with self.state.lock:
            rec = self._deleted(name)
            return 200, dict(self._key_bundle(rec, rec.latest), **self._deleted_fields(rec))

    def _kv_recover(self, name, version, req, groups):
        with self.state.lock:
            rec = self._deleted(name)
            rec.deleted = None
            self.state.save()
            return 200, self._key_bundle(rec, rec.latest)

    def _kv_purge(self, name, version, req, groups):
        st = self.state
        with st.lock:
            rec = self._deleted(name)
            if st.vault.purge_protection:
                raise kv_error(403, "Forbidden", f"Operation \"purge\" is not allowed because purge protection "
                                                 f"is enabled for this vault. Key {rec.name} will be purged "
                                                 "automatically after the retention period.")
            del st.keys[rec.name.lower()]
            st.save()
            return 204, b""

    def _kv_crypto(self, name, version, req, groups):
        op = groups[-1].lower()
        operation = self.CRYPTO_PERMS[op]
        with self.state.lock:
            rec, kv = self._live(name, version)
        kid = f"{self._base()}/keys/{rec.name}/{kv.version}"
        if not kv.enabled:
            raise kv_error(403, "Forbidden", f"Operation {operation} is not allowed on a disabled key.",
                           "KeyDisabled")
        if operation not in kv.key_ops:
            raise kv_error(403, "Forbidden", f"Operation {operation} is not permitted by the key_ops of this key.",
                           "KeyOperationNotAllowed")
        t = now()
        if operation in ("wrapKey", "encrypt"):  # unwrap and decrypt work outside the nbf/exp window [4]
            if kv.exp is not None and t >= kv.exp:
                raise kv_error(403, "Forbidden", f"Operation {operation} is not allowed on a expired key.",
                               "KeyExpired")
            if kv.nbf is not None and t < kv.nbf:
                raise kv_error(403, "Forbidden", f"Operation {operation} is not allowed on a not yet valid key.",
                               "KeyNotYetValid")
        if not req.get("alg") or "value" not in req:
            raise bad_parameter("The request body must be a JSON object with 'alg' and 'value'.")
        try:
            value = b64url_decode(req["value"])
        except (ValueError, TypeError):
            raise bad_parameter("Property 'value' must be base64url encoded.")
        if not value:
            raise bad_parameter("Property 'value' must not be empty.")
        if op in ("encrypt", "decrypt") and not kv.is_rsa:
            return 200, dict(aes_gcm(kv, req, value, op == "encrypt"), kid=kid)
        check_alg(kv, req["alg"])
        if op in ("encrypt", "decrypt") and req["alg"].startswith("A"):
            raise bad_parameter("AES key wrap is for wrapkey and unwrapkey.")
        result = (wrap if op in ("wrapkey", "encrypt") else unwrap)(kv, req["alg"], value)
        return 200, {"kid": kid, "value": b64url(result)}

    def _challenge(self, resource: str) -> dict:
        authority = self.server.authority or self.host
        return {"WWW-Authenticate": f'Bearer authorization="https://{authority}/{self.state.tenant}", '
                                    f'resource="{resource}"'}

    def _authenticate(self, resource: str) -> str:
        """The client id behind a JWT bearer token this server signed, or a 401 with the challenge
        [2] [7] [15]."""
        auth = self.headers.get("Authorization") or ""
        scheme, _, value = auth.strip().partition(" ")
        value = value.strip()
        challenge = self._challenge(resource)
        if scheme.lower() != "bearer" or not value:
            raise kv_error(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token.",
                           headers=challenge)
        try:
            claims = self.state.check_token(value)
        except (ValueError, TypeError):
            raise kv_error(401, "Unauthorized", "AKV10032: Invalid issuer or signature: the token is not a "
                           "JWT this server signed.", headers=challenge)
        self.client = claims.get("appid") if isinstance(claims.get("appid"), str) else None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= now():
            raise kv_error(401, "Unauthorized", "Token validation failed: the token has expired.", headers=challenge)
        if claims.get("tid") != self.state.tenant:
            raise kv_error(401, "Unauthorized", f"AKV10032: Invalid issuer. Expected one of "
                           f"https://sts.windows.net/{self.state.tenant}/, found "
                           f"{claims.get('iss')}.", headers=challenge)
        if claims.get("aud") != resource:
            raise kv_error(401, "Unauthorized", f"AKV10022: Invalid audience. Expected {resource}, found: "
                           f"{claims.get('aud')}.", headers=challenge)
        if self.state.lookup_token(value) is None:
            raise kv_error(401, "Unauthorized", "Token validation failed: the token is not valid "
                           "(unknown or revoked).", headers=challenge)
        return self.client

    def _authorize(self, cid: str, key_name: str, perm: str, flavour: str) -> None:
        st = self.state
        if st.has_permission(cid, key_name, perm):
            return
        with st.lock:
            client = st.clients.get(cid)
            oid = client.object_id if client else str(uuid.UUID(int=0))
            rbac, denied_code = st.vault.rbac or flavour == "hsm", st.vault.policy_denied_code
        caller = f"appid={cid};oid={oid};iss=https://sts.windows.net/{st.tenant}/"
        if rbac:
            kind = "managedHsm" if flavour == "hsm" else "vaults"
            msg = ("Caller is not authorized to perform action on resource.\r\n"
                   "If role assignments, deny assignments or role definitions were changed recently, please "
                   "observe propagation time.\r\n"
                   f"Caller: {caller}\r\nAction: 'Microsoft.KeyVault/{kind}/{RBAC_ACTIONS[perm]}'\r\n"
                   f"Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/kvserver/"
                   f"providers/microsoft.keyvault/{kind.lower()}/{VAULT_NAME}/keys/{key_name.lower()}'\r\n"
                   "Assignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\n"
                   f"Vault: {VAULT_NAME};location={LOCATION}\r\n")
            raise kv_error(403, "Forbidden", msg, "ForbiddenByRbac")
        raise kv_error(403, "Forbidden", f"The user, group or application '{caller}' does not have keys {perm} "
                       f"permission on key vault '{VAULT_NAME};location={LOCATION}'. For help resolving this "
                       "issue, please see https://go.microsoft.com/fwlink/?linkid=2125287", denied_code)

    # -- admin API ------------------------------------------------------------------------

    def _admin(self, body: bytes) -> None:
        token = self.headers.get("X-Admin-Token") or ""
        if not hmac.compare_digest(token.encode(), self.server.admin_token.encode()):
            raise kv_error(401, "Unauthorized", "The admin API needs the X-Admin-Token header from server.json.")
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            raise admin_error(400, "the body must be JSON")
        if not isinstance(req, dict):
            raise admin_error(400, "the body must be a JSON object")
        for method, pattern, fn in AdminApi.ROUTES:
            if method == self.command:
                m = re.fullmatch(pattern, self.req_path)
                if m:
                    result = fn(self, req, *m.groups())
                    return self._send(200, result if result is not None else {})
        raise admin_error(404, f"no admin endpoint {self.command} {self.req_path}")


class AdminApi:
    """The admin API (HTTPS, header X-Admin-Token). JSON in, JSON out; errors are
    {"error": {"code", "message"}} with 400/404/409.

    GET    /admin/state                         everything (no secrets, no key material)
    GET    /admin/stats                         request counts per operation / status / client, and
                                                connections that carried them ("connections": {"https"
                                                (each one TLS handshake), "http"}; admin-only ones not)
    POST   /admin/stats/reset
    GET    /admin/keys
    POST   /admin/keys                          {name, kty: RSA|RSA-HSM|oct-HSM, size, key_ops,
                                                 enabled, nbf, exp, managed_hsm} -> {kid, version, ...}
    POST   /admin/keys/{name}/versions          {size, key_ops, enabled, nbf, exp} -> new version
    PATCH  /admin/keys/{name}/{version|latest}  {enabled, nbf, exp (null clears), key_ops}
    DELETE /admin/keys/{name}                   soft delete (or hard, if soft delete is off)
    POST   /admin/keys/{name}/recover
    DELETE /admin/deletedkeys/{name}            purge (403 with purge protection)
    GET    /admin/vault
    PATCH  /admin/vault                         {soft_delete, purge_protection, retention_days, rbac,
                                                 policy_denied_code, disabled_get, token_lifetime,
                                                 reject_assertion_replay}
    POST   /admin/clients                       {client_id, secret, certificate_pem, federated_token,
                                                 managed_identity, system_assigned, enabled}; merges
    DELETE /admin/clients/{id}
    POST   /admin/clients/{id}/revoke-tokens
    POST   /admin/grants                        {client_id, key: name|"*", permissions: [get, wrapKey, unwrapKey]}
    POST   /admin/grants/revoke                 same; permissions omitted = all
    POST   /admin/tokens                        {client_id, resource, lifetime} -> {access_token, expires_on}
    GET    /admin/tokens                        every live token issued, with its value (for leak searches)
    GET    /admin/faults
    POST   /admin/faults                        {pattern (regex on the path), method, status, retry_after,
                                                 body, latency_ms, drop, hang, hang_seconds,
                                                 count | seconds | probability}
    DELETE /admin/faults                        clears faults and raw rules
    DELETE /admin/faults/{id}
    POST   /admin/transient                     {kind: imds-404 | imds-410 | imds-429 | imds-500 | firewall |
                                                 throttle, count | seconds | probability,
                                                 retry_after}: a fault with Azure's status and body [16]
    POST   /admin/raw                           {pattern, method, status, body | body_b64, headers: [[k, v]],
                                                 preset, size, count (default 1, 0 = unlimited)}
    DELETE /admin/raw
    POST   /admin/shutdown
    """

    def state(h: Handler, req):
        st = h.state
        with st.lock:
            return {"tenant": st.tenant, "vault": st.vault_summary(),
                    "keys": [st.key_summary(r) for r in st.keys.values()],
                    "clients": [dict(c.summary(), grants=st.grants_of(c.client_id)) for c in st.clients.values()],
                    "faults": [r.describe() for r in st.faults], "raw": [r.describe() for r in st.raw_rules],
                    "live_tokens": sum(1 for t in st.tokens.values() if t.expires > now())}

    def stats(h: Handler, req):
        return h.state.stats()

    def stats_reset(h: Handler, req):
        h.state.stats_reset()
        return h.state.stats()

    def list_keys(h: Handler, req):
        with h.state.lock:
            return {"keys": [h.state.key_summary(r) for r in h.state.keys.values()]}

    @staticmethod
    def _key_result(h: Handler, rec: KeyRecord, kv: KeyVersion) -> dict:
        return {"kid": f"https://{h.host}/keys/{rec.name}/{kv.version}", "name": rec.name, "version": kv.version,
                "kty": kv.kty, "size": kv.size, "key_ops": kv.key_ops, "managed_hsm": rec.managed_hsm,
                "enabled": kv.enabled, "nbf": kv.nbf, "exp": kv.exp}

    def create_key(h: Handler, req):
        rec, kv = h.state.create_key(req.get("name"), req.get("kty", "RSA"), req.get("size"), req.get("key_ops"),
                                     req.get("enabled", True), req.get("nbf"), req.get("exp"),
                                     req.get("managed_hsm"))
        return AdminApi._key_result(h, rec, kv)

    def new_version(h: Handler, req, name):
        rec, kv = h.state.add_version(name, req.get("size"), req.get("key_ops"), req.get("enabled", True),
                                      req.get("nbf"), req.get("exp"))
        return AdminApi._key_result(h, rec, kv)

    def set_attributes(h: Handler, req, name, version):
        rec, kv = h.state.set_attributes(name, version, req)
        return AdminApi._key_result(h, rec, kv)

    def delete_key(h: Handler, req, name):
        return h.state.delete_key(name)

    def recover_key(h: Handler, req, name):
        rec = h.state.recover_key(name)
        return AdminApi._key_result(h, rec, rec.latest)

    def purge_key(h: Handler, req, name):
        return h.state.purge_key(name)

    def get_vault(h: Handler, req):
        with h.state.lock:
            return h.state.vault_summary()

    def set_vault(h: Handler, req):
        return h.state.update_vault(req)

    def add_client(h: Handler, req):
        client = h.state.upsert_client(req)
        return dict(client.summary(), grants=h.state.grants_of(client.client_id))

    def remove_client(h: Handler, req, cid):
        h.state.remove_client(cid)
        return {"removed": cid}

    def revoke_tokens(h: Handler, req, cid):
        return {"client_id": cid, "revoked": h.state.revoke_tokens(cid)}

    def grant(h: Handler, req, revoke=False):
        perms = req.get("permissions")
        if isinstance(perms, str):
            perms = [p for p in perms.split(",") if p]
        grants = h.state.grant(req.get("client_id"), req.get("key", "*"), perms, revoke=revoke)
        return {"client_id": req.get("client_id"), "grants": grants}

    def revoke(h: Handler, req):
        return AdminApi.grant(h, req, revoke=True)

    def mint_token(h: Handler, req):
        cid, resource = req.get("client_id"), req.get("resource", VAULT_RESOURCE).rstrip("/")
        if cid not in h.state.clients:
            raise admin_error(404, f"no client {cid}")
        if resource not in RESOURCES:
            raise admin_error(400, f"resource must be one of {', '.join(RESOURCES)}")
        lifetime = req.get("lifetime")
        if lifetime is not None and (not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0):
            raise admin_error(400, "lifetime must be a positive number of seconds")
        value, tok = h.state.issue_token(cid, resource, lifetime)
        return {"access_token": value, "expires_on": tok.expires, "resource": resource, "client_id": cid}

    def list_tokens(h: Handler, req):
        """The values, so a test can search for them where they must not be (logs, /proc)."""
        with h.state.lock:
            return {"tokens": [dict(t.__dict__, access_token=v) for v, t in h.state.tokens.items()
                               if t.expires > now()]}

    def list_faults(h: Handler, req):
        with h.state.lock:
            return {"faults": [r.describe() for r in h.state.faults], "raw": [r.describe() for r in h.state.raw_rules]}

    def add_fault(h: Handler, req):
        return h.state.add_fault(req).describe()

    def clear_faults(h: Handler, req):
        return h.state.clear_faults()

    def remove_fault(h: Handler, req, rid):
        with h.state.lock:
            before = len(h.state.faults) + len(h.state.raw_rules)
            h.state.faults = [r for r in h.state.faults if r.id != int(rid)]
            h.state.raw_rules = [r for r in h.state.raw_rules if r.id != int(rid)]
            if len(h.state.faults) + len(h.state.raw_rules) == before:
                raise admin_error(404, f"no fault {rid}")
        return {"removed": int(rid)}

    def add_raw(h: Handler, req):
        pattern = req.get("pattern")
        try:
            re.compile(pattern)
        except (re.error, TypeError):
            raise admin_error(400, "pattern must be a regular expression matched against the path")
        status, body, headers = 200, b"", []
        if req.get("preset"):
            status, body, headers = raw_preset(req["preset"], req.get("size"))
        if req.get("status") is not None:
            status = int(req["status"])
        if req.get("body") is not None:
            body = str(req["body"]).encode()
        if req.get("body_b64") is not None:
            body = base64.b64decode(req["body_b64"])
        if req.get("headers"):
            given = [(str(k), str(v)) for k, v in req["headers"]]
            names = {k.lower() for k, _ in given}
            headers = [(k, v) for k, v in headers if k.lower() not in names] + given
        if not 100 <= status <= 599:
            raise admin_error(400, "status must be 100..599")
        count = req.get("count", 1)
        rule = RawRule(id=0, pattern=pattern, status=status, body=body, headers=headers, method=req.get("method"),
                       remaining=None if count == 0 else int(count))
        return h.state.add_raw(rule).describe()

    def add_transient(h: Handler, req):
        """A built-in transient behaviour as a fault rule with the documented status and body."""
        kind = req.get("kind")
        if kind not in TRANSIENTS:
            raise admin_error(400, f"kind must be one of {', '.join(TRANSIENTS)}")
        pattern, status, body, retry_after = TRANSIENTS[kind]
        spec = {"pattern": pattern, "status": status, "body": json.dumps(body, separators=(",", ":"))}
        if req.get("retry_after") is not None or retry_after is not None:
            spec["retry_after"] = req.get("retry_after", retry_after)
        for k in ("count", "seconds", "probability", "method"):
            if req.get(k) is not None:
                spec[k] = req[k]
        return dict(h.state.add_fault(spec).describe(), kind=kind)

    def clear_raw(h: Handler, req):
        with h.state.lock:
            n = len(h.state.raw_rules)
            h.state.raw_rules = []
        return {"cleared_raw": n}

    def shutdown(h: Handler, req):
        h.server.stopping.set()
        return {"stopping": True}

    N = r"([0-9A-Za-z-]{1,127})"
    ROUTES = [
        ("GET", r"/admin/state", state),
        ("GET", r"/admin/stats", stats),
        ("POST", r"/admin/stats/reset", stats_reset),
        ("GET", r"/admin/keys", list_keys),
        ("POST", r"/admin/keys", create_key),
        ("POST", rf"/admin/keys/{N}/versions", new_version),
        ("PATCH", rf"/admin/keys/{N}/([0-9a-fA-F]{{32}}|latest)", set_attributes),
        ("DELETE", rf"/admin/keys/{N}", delete_key),
        ("POST", rf"/admin/keys/{N}/recover", recover_key),
        ("DELETE", rf"/admin/deletedkeys/{N}", purge_key),
        ("GET", r"/admin/vault", get_vault),
        ("PATCH", r"/admin/vault", set_vault),
        ("POST", r"/admin/clients", add_client),
        ("DELETE", r"/admin/clients/([^/]+)", remove_client),
        ("POST", r"/admin/clients/([^/]+)/revoke-tokens", revoke_tokens),
        ("POST", r"/admin/grants", grant),
        ("POST", r"/admin/grants/revoke", revoke),
        ("POST", r"/admin/tokens", mint_token),
        ("GET", r"/admin/tokens", list_tokens),
        ("GET", r"/admin/faults", list_faults),
        ("POST", r"/admin/faults", add_fault),
        ("DELETE", r"/admin/faults", clear_faults),
        ("DELETE", r"/admin/faults/(\d+)", remove_fault),
        ("POST", r"/admin/raw", add_raw),
        ("POST", r"/admin/transient", add_transient),
        ("DELETE", r"/admin/raw", clear_raw),
        ("POST", r"/admin/shutdown", shutdown),
    ]


# Built-in transient behaviours [16]: kind -> (path pattern, status, body, default Retry-After).
# The IMDS statuses and reasons are from the managed-identity error table; the bodies
# follow IMDS's {"error", "error_description"} shape with those reasons as descriptions.
_KEYS_PATHS = r"^/(keys|deletedkeys)(/|$)"
_IMDS_PATH = r"^/metadata/identity/oauth2/token"
TRANSIENTS = {
    "imds-404": (_IMDS_PATH, 404, {"error": "not_found", "error_description": "IMDS endpoint is updating."}, None),
    "imds-410": (_IMDS_PATH, 410, {"error": "gone", "error_description": "IMDS is going through updates. IMDS "
                                   "will be available within 70 seconds."}, None),
    "imds-429": (_IMDS_PATH, 429, {"error": "too_many_requests", "error_description": "IMDS Throttle limit "
                                   "reached."}, None),
    "imds-500": (_IMDS_PATH, 500, {"error": "unknown_error", "error_description": "Transient error from "
                                   "service."}, None),
    "firewall": (_KEYS_PATHS, 403, {"error": {
        "code": "Forbidden",
        "message": "Client address is not authorized and caller is not a trusted service.\r\nClient address: "
                   f"127.0.0.1\r\nCaller: appid=(caller)\r\nVault: {VAULT_NAME};location={LOCATION}",
        "innererror": {"code": "ForbiddenByFirewall"}}}, None),
    "throttle": (_KEYS_PATHS, 429, {"error": {
        "code": "Throttled", "message": "Request was not processed because too many requests were received. "
                                        "Reason: VaultRequestTypeLimitReached"}}, "10"),
}


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------

SAFE_QUERY = ("api-version", "resource", "client_id", "object_id", "principal_id", "mi_res_id")


class Server(ThreadingHTTPServer):
    """A threaded server on 127.0.0.1; with a TLS context the handshake runs in the
    request's own thread, so a slow or silent client cannot stall the accept loop."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, state: State, tls: ssl.SSLContext | None, log, admin_token: str,
                 identity_header: str, stopping: threading.Event, flavour: str = "vault"):
        self.state, self.tls, self.plain = state, tls, tls is None
        self.flavour = flavour  # "vault" (also admin API and token endpoint) or "hsm" (Managed HSM)
        self.authority = None  # the Managed HSM host names the vault port (its token endpoint) in challenges
        self.log, self.admin_token, self.identity_header, self.stopping = log, admin_token, identity_header, stopping
        self.arc_dir, self.arc_lock, self.arc_pending = "", threading.Lock(), {}
        super().__init__(("127.0.0.1", port), Handler)

    def process_request_thread(self, request, client_address):
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and
        # the client's delayed ACK add ~40 ms to every response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:
                request.settimeout(30)
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, socket.timeout)):
            super().handle_error(request, client_address)

    def log_request_line(self, h: Handler, elapsed: float) -> None:
        query = "&".join(f"{k}={v}" for k, v in h.query.items() if k in SAFE_QUERY)
        path = h.req_path + (f"?{query}" if query else "")
        status = h.status_note or "-"
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        scheme = "http " if self.plain else ("hsm  " if self.flavour == "hsm" else "https")
        line = (f"{stamp} {scheme} {h.command} {path} {status} op={h.op}"
                f" client={h.client or '-'} ms={elapsed * 1000:.0f}" + (f" {h.fault_note}" if h.fault_note else ""))
        self.log(line)
        self.state.record(h.op, status, h.client, h.fault_note)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Key Vault-compatible test server (loopback only).")
    ap.add_argument("--state-dir", required=True, help="directory for server.json, ca.pem, requests.log")
    ap.add_argument("--port", type=int, default=0, help="HTTPS port (0: any free port)")
    ap.add_argument("--http-port", type=int, default=0, help="plain HTTP port for IMDS/App Service (0: any)")
    ap.add_argument("--hsm-port", type=int, default=0, help="HTTPS port of the Managed HSM host (0: any)")
    ap.add_argument("--tenant", help="tenant id (default: a random GUID)")
    ap.add_argument("--admin-token", help="admin token (default: random)")
    ap.add_argument("--persist", action="store_true", help="keep vault state and CA in the state dir")
    args = ap.parse_args(argv)

    sd = os.path.abspath(args.state_dir)
    os.makedirs(sd, mode=0o700, exist_ok=True)
    server_json = os.path.join(sd, "server.json")
    if os.path.exists(server_json):
        os.unlink(server_json)  # a waiting test must not see a stale file

    state = State(args.tenant or str(uuid.uuid4()), os.path.join(sd, "state.json") if args.persist else None)
    if args.tenant:
        state.tenant = args.tenant
    ca_pem, srv_pem, srv_key = make_tls_material(sd, reuse=args.persist)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(srv_pem, srv_key)

    log_lock = threading.Lock()
    log_file = open(os.path.join(sd, "requests.log"), "a", encoding="utf-8", buffering=1)

    def log(line: str) -> None:
        with log_lock:
            if not log_file.closed:  # a hanging request may end after shutdown
                log_file.write(line + "\n")

    admin_token = args.admin_token or secrets.token_urlsafe(24)
    identity_header = secrets.token_hex(16)
    stopping = threading.Event()
    https = Server(args.port, state, tls, log, admin_token, identity_header, stopping)
    http = Server(args.http_port, state, None, log, admin_token, identity_header, stopping)
    hsm = Server(args.hsm_port, state, tls, log, admin_token, identity_header, stopping, flavour="hsm")
    hsm.authority = f"127.0.0.1:{https.server_address[1]}"
    http.arc_dir = os.path.join(sd, "arc-tokens")  # the Arc agent's /var/opt/azcmagent/tokens
    os.makedirs(http.arc_dir, mode=0o700, exist_ok=True)
    os.chmod(http.arc_dir, 0o700)
    servers = (https, http, hsm)
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
               for s in servers]
    for t in threads:
        t.start()

    port, hport = https.server_address[1], http.server_address[1]
    info = {"url": f"https://127.0.0.1:{port}", "imds_url": f"http://127.0.0.1:{hport}",
            "identity_endpoint": f"http://127.0.0.1:{hport}/msi/token", "identity_header": identity_header,
            "ca_file": ca_pem, "pid": os.getpid(), "tenant": state.tenant, "admin_token": admin_token,
            "token_endpoint": f"https://127.0.0.1:{port}/{state.tenant}/oauth2/v2.0/token",
            "authority_host": f"https://127.0.0.1:{port}", "state_dir": sd,
            "hsm_url": f"https://127.0.0.1:{hsm.server_address[1]}",
            "arc_identity_endpoint": f"http://127.0.0.1:{hport}/arc/metadata/identity/oauth2/token",
            "arc_imds_endpoint": f"http://127.0.0.1:{hport}/arc", "arc_token_dir": http.arc_dir}
    write_atomic(server_json, (json.dumps(info, indent=2) + "\n").encode(), 0o600)
    log(f"# kvserver {info['url']} imds {info['imds_url']} pid {os.getpid()} tenant {state.tenant}")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        pass
    for s in servers:
        s.shutdown()
        s.server_close()
    try:
        os.unlink(server_json)
    except OSError:
        pass
    log("# kvserver stopped")
    with log_lock:
        log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
