#!/usr/bin/env python3
"""kvctl: a small CLI over the kvserver admin API, for shell tests and the README demo.

    kvctl.py --state-dir DIR COMMAND [args]

Reads DIR/server.json (url, ca_file, admin_token), prints the JSON answer and exits 0 on
success, 1 on an error answer (the error JSON is printed too), 2 on bad usage.

Commands:
  wait [--timeout S]                          until server.json exists and the server answers
  create-key NAME [--kty RSA|RSA-HSM|oct-HSM] [--size N] [--ops wrapKey,unwrapKey,...]
                  [--disabled] [--exp EPOCH] [--nbf EPOCH] [--managed-hsm]
  new-version NAME [--size N] [--ops ...] [--disabled] [--exp EPOCH] [--nbf EPOCH]
  set NAME VERSION|latest [--enabled true|false] [--exp EPOCH|none] [--nbf EPOCH|none] [--ops ...]
  delete NAME | recover NAME | purge NAME | keys | state
  vault [--soft-delete on|off] [--purge-protection on|off] [--rbac on|off] [--retention-days N]
        [--token-lifetime S] [--denied-code ForbiddenByPolicy|AccessDenied] [--disabled-get ok|forbidden]
        [--reject-assertion-replay on|off]
  client add ID [--secret S] [--cert PEM|FILE] [--federated-token STRING] [--federated-token-file F]
                [--managed-identity] [--system-assigned] [--disabled]
  client remove ID
  grant ID NAME|* get,wrapKey,unwrapKey      (or any access-policy key permission: list, create,
                                              import, update, delete, recover, purge, rotate,
                                              getrotationpolicy, setrotationpolicy, encrypt, decrypt)
  revoke ID NAME|* [ops]                      (no ops: all)
  revoke-tokens ID
  token ID [--resource URL] [--lifetime S]    mint a bearer token directly
  tokens                                      list the live tokens issued (values included)
  fault PATTERN [--status N] [--retry-after S] [--count N | --seconds S | --probability P]
                [--latency-ms M] [--drop] [--hang [--hang-seconds S]] [--method M] [--body B]
  fault-clear
  transient KIND [--count N | --seconds S] [--retry-after S]
                                              Azure's transient replies: imds-404 imds-410 imds-429
                                              imds-500 firewall (403 ForbiddenByFirewall) throttle (429)
  raw PATTERN [--status S] [--body B] [--header K:V]... [--preset P] [--size N] [--count N] [--method M]
              presets: invalid-json huge bad-base64 wrong-key-size redirect empty html
  stats [--reset]
  env                                         shell exports for Azure SDK-style clients
  shutdown

PATTERN is a regular expression searched in the request path (e.g. '/unwrapkey$').
"""

import argparse
import json
import os
import re
import shlex
import ssl
import sys
import time
import urllib.error
import urllib.request


def load_info(state_dir: str) -> dict:
    with open(os.path.join(state_dir, "server.json"), encoding="utf-8") as f:
        return json.load(f)


def call(info: dict, method: str, path: str, body=None, timeout: float = 30):
    """One admin request: (ok, parsed JSON)."""
    ctx = ssl.create_default_context(cafile=info["ca_file"])
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(info["url"] + path, data=data, method=method,
                                 headers={"X-Admin-Token": info["admin_token"], "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return True, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return False, json.loads(raw)
        except ValueError:
            return False, {"error": {"code": str(e.code), "message": raw.decode("utf-8", "replace")}}


def on_off(text: str) -> bool:
    if text.lower() in ("on", "true", "yes", "1"):
        return True
    if text.lower() in ("off", "false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError("expected on/off")


def epoch_or_none(text: str):
    return None if text.lower() in ("none", "null", "") else int(text)


def ops_list(text: str) -> list:
    return [o.strip() for o in text.split(",") if o.strip()]


def read_cert(value: str) -> str:
    """The first CERTIFICATE block of PEM text or of a PEM file (which may also hold the
    private key, as Azure SDK certificate files do: that part is never sent)."""
    if "-----BEGIN" not in value:
        with open(value, encoding="ascii") as f:
            value = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", value, re.S)
    if not m:
        raise SystemExit("kvctl: --cert: no CERTIFICATE block found")
    return m.group(0) + "\n"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kvctl.py", description="CLI over the kvserver admin API",
                                 epilog="See the module docstring for every command.")
    ap.add_argument("--state-dir", required=True)
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("wait")
    p.add_argument("--timeout", type=float, default=15)

    def key_options(p, versions_only=False):
        if not versions_only:
            p.add_argument("--kty", default="RSA", choices=["RSA", "RSA-HSM", "oct-HSM"])
            p.add_argument("--managed-hsm", action="store_true", help="an RSA-HSM key in the Managed HSM flavour")
        p.add_argument("--size", type=int)
        p.add_argument("--ops", type=ops_list, help="key_ops, comma-separated")
        p.add_argument("--disabled", action="store_true")
        p.add_argument("--exp", type=int)
        p.add_argument("--nbf", type=int)

    p = sub.add_parser("create-key")
    p.add_argument("name")
    key_options(p)
    p = sub.add_parser("new-version")
    p.add_argument("name")
    key_options(p, versions_only=True)

    p = sub.add_parser("set")
    p.add_argument("name")
    p.add_argument("version")
    p.add_argument("--enabled", type=on_off)
    p.add_argument("--exp", type=epoch_or_none, default=argparse.SUPPRESS)
    p.add_argument("--nbf", type=epoch_or_none, default=argparse.SUPPRESS)
    p.add_argument("--ops", type=ops_list)

    for name in ("delete", "recover", "purge"):
        sub.add_parser(name).add_argument("name")
    for name in ("keys", "state", "tokens", "fault-clear", "env", "shutdown"):
        sub.add_parser(name)

    p = sub.add_parser("vault")
    p.add_argument("--soft-delete", type=on_off)
    p.add_argument("--purge-protection", type=on_off)
    p.add_argument("--rbac", type=on_off)
    p.add_argument("--retention-days", type=int)
    p.add_argument("--token-lifetime", type=int)
    p.add_argument("--denied-code", choices=["ForbiddenByPolicy", "AccessDenied"])
    p.add_argument("--disabled-get", choices=["ok", "forbidden"])
    p.add_argument("--reject-assertion-replay", type=on_off)

    p = sub.add_parser("client")
    csub = p.add_subparsers(dest="client_cmd", required=True)
    c = csub.add_parser("add")
    c.add_argument("id")
    c.add_argument("--secret")
    c.add_argument("--cert", help="certificate PEM text or a PEM file")
    c.add_argument("--federated-token")
    c.add_argument("--federated-token-file")
    c.add_argument("--managed-identity", action="store_true")
    c.add_argument("--system-assigned", action="store_true")
    c.add_argument("--disabled", action="store_true")
    csub.add_parser("remove").add_argument("id")

    p = sub.add_parser("grant")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("ops", type=ops_list)
    p = sub.add_parser("revoke")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("ops", type=ops_list, nargs="?")
    sub.add_parser("revoke-tokens").add_argument("id")

    p = sub.add_parser("token")
    p.add_argument("id")
    p.add_argument("--resource", default="https://vault.azure.net")
    p.add_argument("--lifetime", type=int)

    p = sub.add_parser("fault")
    p.add_argument("pattern")
    p.add_argument("--status", type=int)
    p.add_argument("--retry-after")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--count", type=int)
    g.add_argument("--seconds", type=float)
    p.add_argument("--probability", type=float)
    p.add_argument("--latency-ms", type=int)
    p.add_argument("--drop", action="store_true")
    p.add_argument("--hang", action="store_true")
    p.add_argument("--hang-seconds", type=float)
    p.add_argument("--method")
    p.add_argument("--body")

    p = sub.add_parser("transient")
    p.add_argument("kind", choices=["imds-404", "imds-410", "imds-429", "imds-500", "firewall", "throttle"])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--count", type=int)
    g.add_argument("--seconds", type=float)
    p.add_argument("--retry-after")

    p = sub.add_parser("raw")
    p.add_argument("pattern")
    p.add_argument("--status", type=int)
    p.add_argument("--body")
    p.add_argument("--header", action="append", default=[], help="K:V, repeatable")
    p.add_argument("--preset")
    p.add_argument("--size", type=int)
    p.add_argument("--count", type=int, default=1, help="0: every matching request")
    p.add_argument("--method")

    p = sub.add_parser("stats")
    p.add_argument("--reset", action="store_true")
    return ap


def drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def run(args, info: dict):
    """Maps a command to (method, path, body)."""
    cmd = args.cmd
    if cmd == "create-key":
        return "POST", "/admin/keys", drop_none({
            "name": args.name, "kty": args.kty, "size": args.size, "key_ops": args.ops,
            "enabled": False if args.disabled else None, "exp": args.exp, "nbf": args.nbf,
            "managed_hsm": True if args.managed_hsm else None})
    if cmd == "new-version":
        return "POST", f"/admin/keys/{args.name}/versions", drop_none({
            "size": args.size, "key_ops": args.ops, "enabled": False if args.disabled else None,
            "exp": args.exp, "nbf": args.nbf})
    if cmd == "set":
        body = drop_none({"enabled": args.enabled, "key_ops": args.ops})
        for attr in ("exp", "nbf"):  # present with None means "clear"
            if hasattr(args, attr):
                body[attr] = getattr(args, attr)
        return "PATCH", f"/admin/keys/{args.name}/{args.version}", body
    if cmd == "delete":
        return "DELETE", f"/admin/keys/{args.name}", None
    if cmd == "recover":
        return "POST", f"/admin/keys/{args.name}/recover", {}
    if cmd == "purge":
        return "DELETE", f"/admin/deletedkeys/{args.name}", None
    if cmd == "keys":
        return "GET", "/admin/keys", None
    if cmd == "state":
        return "GET", "/admin/state", None
    if cmd == "vault":
        return "PATCH", "/admin/vault", drop_none({
            "soft_delete": args.soft_delete, "purge_protection": args.purge_protection, "rbac": args.rbac,
            "retention_days": args.retention_days, "token_lifetime": args.token_lifetime,
            "policy_denied_code": args.denied_code, "disabled_get": args.disabled_get,
            "reject_assertion_replay": args.reject_assertion_replay})
    if cmd == "client" and args.client_cmd == "add":
        token = args.federated_token
        if args.federated_token_file:
            with open(args.federated_token_file, encoding="utf-8") as f:
                token = f.read().strip()
        return "POST", "/admin/clients", drop_none({
            "client_id": args.id, "secret": args.secret,
            "certificate_pem": read_cert(args.cert) if args.cert else None, "federated_token": token,
            "managed_identity": True if args.managed_identity else None,
            "system_assigned": True if args.system_assigned else None,
            "enabled": False if args.disabled else None})
    if cmd == "client" and args.client_cmd == "remove":
        return "DELETE", f"/admin/clients/{args.id}", None
    if cmd == "grant":
        return "POST", "/admin/grants", {"client_id": args.id, "key": args.name, "permissions": args.ops}
    if cmd == "revoke":
        return "POST", "/admin/grants/revoke", drop_none({"client_id": args.id, "key": args.name,
                                                          "permissions": args.ops})
    if cmd == "revoke-tokens":
        return "POST", f"/admin/clients/{args.id}/revoke-tokens", {}
    if cmd == "token":
        return "POST", "/admin/tokens", drop_none({"client_id": args.id, "resource": args.resource,
                                                   "lifetime": args.lifetime})
    if cmd == "tokens":
        return "GET", "/admin/tokens", None
    if cmd == "fault":
        return "POST", "/admin/faults", drop_none({
            "pattern": args.pattern, "status": args.status, "retry_after": args.retry_after, "count": args.count,
            "seconds": args.seconds, "probability": args.probability, "latency_ms": args.latency_ms,
            "drop": args.drop or None, "hang": args.hang or None, "hang_seconds": args.hang_seconds,
            "method": args.method, "body": args.body})
    if cmd == "transient":
        return "POST", "/admin/transient", drop_none({"kind": args.kind, "count": args.count,
                                                      "seconds": args.seconds, "retry_after": args.retry_after})
    if cmd == "fault-clear":
        return "DELETE", "/admin/faults", None
    if cmd == "raw":
        headers = []
        for h in args.header:
            k, sep, v = h.partition(":")
            if not sep:
                raise SystemExit(f"kvctl: --header wants K:V, got {h!r}")
            headers.append([k.strip(), v.strip()])
        return "POST", "/admin/raw", drop_none({
            "pattern": args.pattern, "status": args.status, "body": args.body, "headers": headers or None,
            "preset": args.preset, "size": args.size, "count": args.count, "method": args.method})
    if cmd == "stats":
        return ("POST", "/admin/stats/reset", {}) if args.reset else ("GET", "/admin/stats", None)
    if cmd == "shutdown":
        return "POST", "/admin/shutdown", {}
    raise SystemExit(f"kvctl: unknown command {cmd}")


def wait(state_dir: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = load_info(state_dir)
            ok, answer = call(info, "GET", "/admin/vault", timeout=2)
            if ok:
                print(json.dumps({"url": info["url"], "imds_url": info["imds_url"], "pid": info["pid"]}))
                return 0
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    print(json.dumps({"error": {"code": "Timeout", "message": f"no kvserver in {state_dir}"}}))
    return 1


def env(info: dict) -> int:
    """Shell exports: the authority, tenant and managed-identity endpoints of this server."""
    exports = {
        "KVSERVER_URL": info["url"], "KVSERVER_HSM_URL": info["hsm_url"], "KVSERVER_CA_FILE": info["ca_file"],
        "AZURE_TENANT_ID": info["tenant"], "AZURE_AUTHORITY_HOST": info["authority_host"],
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": info["imds_url"],  # IMDS override used by Azure SDKs
        "IDENTITY_ENDPOINT": info["identity_endpoint"], "IDENTITY_HEADER": info["identity_header"],
        # Azure Arc: IDENTITY_ENDPOINT and IMDS_ENDPOINT, no IDENTITY_HEADER; the token
        # directory is the test-only override of /var/opt/azcmagent/tokens/
        "KVSERVER_ARC_IDENTITY_ENDPOINT": info["arc_identity_endpoint"],
        "KVSERVER_ARC_IMDS_ENDPOINT": info["arc_imds_endpoint"],
        "KVSERVER_ARC_TOKEN_DIR": info["arc_token_dir"],
    }
    for k, v in exports.items():
        print(f"export {k}={shlex.quote(v)}")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "wait":
        return wait(args.state_dir, args.timeout)
    try:
        info = load_info(args.state_dir)
    except (OSError, ValueError) as e:
        print(json.dumps({"error": {"code": "NoServer", "message": str(e)}}))
        return 1
    if args.cmd == "env":
        return env(info)
    method, path, body = run(args, info)
    try:
        ok, answer = call(info, method, path, body)
    except OSError as e:
        print(json.dumps({"error": {"code": "ConnectionFailed", "message": str(e)}}))
        return 1
    print(json.dumps(answer, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
