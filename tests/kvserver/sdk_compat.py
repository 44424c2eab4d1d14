#!/usr/bin/env python3
"""Optional: drive kvserver with the official Azure SDK for Python, to show that the SDK's
own clients talk to it. Not part of the regular suite; needs Debian's python3-azure and
python3-msal (apt-get install python3-azure python3-msal), which install for the system
interpreter:

    /usr/bin/python3 tests/kvserver/sdk_compat.py

Exits 77 (skip) when the SDK is missing. What an SDK client needs to be pointed at kvserver:
  - REQUESTS_CA_BUNDLE=<ca_file>               trust the throwaway CA
  - authority=<authority_host> (or AZURE_AUTHORITY_HOST) and instance discovery off
    (disable_instance_discovery=True; instance_discovery=False in older azure-identity)
  - verify_challenge_resource=False            the challenge names vault.azure.net, not 127.0.0.1
  - an api_version kvserver accepts (7.0..7.6, 2025-07-01; older betas default to a preview)
  - IMDS: AZURE_POD_IDENTITY_AUTHORITY_HOST=<imds_url>; App Service: IDENTITY_ENDPOINT and
    IDENTITY_HEADER from server.json
"""

import datetime
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.identity import (CertificateCredential, ClientAssertionCredential, ClientSecretCredential,
                                ManagedIdentityCredential)
    from azure.keyvault.keys import KeyClient
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
except ImportError as e:
    print(f"sdk_compat: SKIP (Azure SDK not available: {e})")
    sys.exit(77)


def main() -> int:
    results = []

    def check(name, fn):
        try:
            detail = fn()
            results.append(True)
            print(f"ok - {name}" + (f": {detail}" if detail else ""))
        except Exception as e:
            results.append(False)
            print(f"FAIL - {name}: {type(e).__name__}: {str(e).splitlines()[0]}")

    with tempfile.TemporaryDirectory(prefix="kvserver-sdk.") as sd:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "kvserver.py"), "--state-dir", sd],
                                stdout=subprocess.DEVNULL)
        try:
            return run(sd, check, results)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)


def run(sd, check, results) -> int:
    def ctl(*args):
        out = subprocess.run([sys.executable, os.path.join(HERE, "kvctl.py"), "--state-dir", sd, *args],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out) if out.startswith("{") else out

    ctl("wait")
    with open(os.path.join(sd, "server.json")) as f:
        info = json.load(f)
    os.environ["REQUESTS_CA_BUNDLE"] = info["ca_file"]
    url, tenant, authority = info["url"], info["tenant"], info["authority_host"]

    # azure-identity renamed the instance-discovery switch; use whichever this version has.
    params = inspect.signature(ClientSecretCredential.__init__).parameters
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
    no_discovery = {"disable_instance_discovery": True}
    import azure.identity._internal.msal_credentials as mc
    if "instance_discovery" in inspect.signature(mc.MsalCredential.__init__).parameters:
        no_discovery = {"instance_discovery": False}
    cred_kw = dict(authority=authority, **(no_discovery if accepts_any else {}))
    api = "7.3"  # the newest GA version the Debian SDK build knows
    client_kw = dict(verify_challenge_resource=False, api_version=api)

    ctl("create-key", "sdk-rsa")
    ctl("create-key", "sdk-hsm", "--kty", "oct-HSM")
    ctl("client", "add", "sdk-app", "--secret", "sdk-secret")
    ctl("grant", "sdk-app", "*", "get,wrapKey,unwrapKey")
    cred = ClientSecretCredential(tenant, "sdk-app", "sdk-secret", **cred_kw)
    keys = KeyClient(url, cred, **client_kw)

    def secret_get():
        k = keys.get_key("sdk-rsa")
        assert k.key_type == "RSA" and k.properties.recovery_level == "Recoverable+Purgeable"
        return k.id

    def rsa_wrap():
        k = keys.get_key("sdk-rsa")
        cc = CryptographyClient(k.id, cred, **client_kw)
        wrapped = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
        assert cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == b"k" * 32

    def hsm_wrap():
        k = keys.get_key("sdk-hsm")  # a second challenge, for https://managedhsm.azure.net
        cc = CryptographyClient(k.id, cred, **client_kw)
        wrapped = cc.wrap_key(KeyWrapAlgorithm.aes_256, b"h" * 32)
        assert cc.unwrap_key(KeyWrapAlgorithm.aes_256, wrapped.encrypted_key).key == b"h" * 32

    def disabled():
        k = keys.get_key("sdk-rsa")
        cc = CryptographyClient(k.id, cred, **client_kw)
        wrapped = cc.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"d" * 32)
        ctl("set", "sdk-rsa", "latest", "--enabled", "false")
        try:
            cc.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
            raise AssertionError("unwrap worked on a disabled key")
        except HttpResponseError as e:
            assert e.status_code == 403 and e.error.innererror["code"] == "KeyDisabled", e
        finally:
            ctl("set", "sdk-rsa", "latest", "--enabled", "true")
        return "403 KeyDisabled"

    def deleted():
        ctl("delete", "sdk-rsa")
        try:
            keys.get_key("sdk-rsa")
            raise AssertionError("a deleted key was found")
        except ResourceNotFoundError as e:
            assert e.error.code == "KeyNotFound"
        finally:
            ctl("recover", "sdk-rsa")
        return "404 KeyNotFound"

    def throttled():
        ctl("fault", "/keys/sdk-rsa", "--status", "429", "--retry-after", "1", "--count", "1")
        t = time.monotonic()
        keys.get_key("sdk-rsa")
        assert time.monotonic() - t >= 1
        return f"retried after {time.monotonic() - t:.1f}s"

    def forbidden():
        ctl("client", "add", "sdk-none", "--secret", "x")
        try:
            KeyClient(url, ClientSecretCredential(tenant, "sdk-none", "x", **cred_kw), **client_kw).get_key("sdk-rsa")
            raise AssertionError("no permission, yet the key was read")
        except HttpResponseError as e:
            assert e.status_code == 403 and e.error.innererror["code"] == "ForbiddenByPolicy", e
        return "403 ForbiddenByPolicy"

    def certificate():
        pk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sdk-cert")])
        t = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pk.public_key())
                .serial_number(1).not_valid_before(t - datetime.timedelta(hours=1))
                .not_valid_after(t + datetime.timedelta(days=1)).sign(pk, hashes.SHA256()))
        path = os.path.join(sd, "sdk-cert.pem")
        with open(path, "wb") as f:
            f.write(pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
        ctl("client", "add", "sdk-cert", "--cert", path)
        ctl("grant", "sdk-cert", "sdk-rsa", "get")
        c = CertificateCredential(tenant, "sdk-cert", path, **cred_kw)
        return KeyClient(url, c, **client_kw).get_key("sdk-rsa").name

    def workload_identity():
        token_file = os.path.join(sd, "federated-token")
        with open(token_file, "w") as f:
            f.write("projected-service-account-token")
        ctl("client", "add", "sdk-wi", "--federated-token", "projected-service-account-token")
        ctl("grant", "sdk-wi", "sdk-rsa", "get")
        os.environ["AZURE_AUTHORITY_HOST"] = authority  # some versions reject authority= here
        c = ClientAssertionCredential(tenant, "sdk-wi", lambda: open(token_file).read())
        return KeyClient(url, c, **client_kw).get_key("sdk-rsa").name

    def imds():
        ctl("client", "add", "sdk-mi", "--system-assigned")
        ctl("grant", "sdk-mi", "sdk-rsa", "get")
        os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = info["imds_url"]
        try:
            return KeyClient(url, ManagedIdentityCredential(), **client_kw).get_key("sdk-rsa").name
        finally:
            del os.environ["AZURE_POD_IDENTITY_AUTHORITY_HOST"]

    def app_service():
        os.environ.update(IDENTITY_ENDPOINT=info["identity_endpoint"], IDENTITY_HEADER=info["identity_header"])
        try:
            return KeyClient(url, ManagedIdentityCredential(), **client_kw).get_key("sdk-rsa").name
        finally:
            del os.environ["IDENTITY_ENDPOINT"], os.environ["IDENTITY_HEADER"]

    for name, fn in [("client secret + challenge, get key", secret_get), ("RSA-OAEP-256 wrap/unwrap", rsa_wrap),
                     ("Managed HSM challenge, A256KW", hsm_wrap), ("disabled key", disabled),
                     ("deleted key", deleted), ("429 with Retry-After", throttled), ("no permission", forbidden),
                     ("certificate credential", certificate), ("workload identity assertion", workload_identity),
                     ("managed identity (IMDS)", imds), ("managed identity (App Service)", app_service)]:
        check(name, fn)
    passed = sum(results)
    print(f"sdk_compat: {passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
