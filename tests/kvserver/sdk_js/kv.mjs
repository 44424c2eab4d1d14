// kv.mjs: the official Azure SDK for JavaScript (@azure/keyvault-keys, @azure/identity)
// pointed at the bundled Key Vault test server with the SDK's own options, as a deployment
// would point it at Azure:
//   - authorityHost (the server's Entra-style token endpoint), instance discovery off;
//   - disableChallengeResourceVerification (the challenge names vault.azure.net or
//     managedhsm.azure.net, not 127.0.0.1);
//   - serviceVersion (an api-version the server accepts);
//   - the throwaway CA through NODE_EXTRA_CA_CERTS (set by the caller).
// Environment: KV_URL (vault or Managed HSM URL), AZURE_TENANT_ID, AZURE_CLIENT_ID,
// AZURE_CLIENT_SECRET, AZURE_AUTHORITY_HOST, KV_API (default 7.6).
//
//   node kv.mjs lifecycle NAME       the whole key lifecycle; "ok - ..." per step, exit 1 on failure
//   node kv.mjs create NAME          create an RSA key (RSA-HSM on a Managed HSM); prints its versioned id
//   node kv.mjs enable NAME VERSION true|false
//   node kv.mjs delete NAME          beginDeleteKey and wait
//   node kv.mjs recover NAME         beginRecoverDeletedKey and wait
import { ClientSecretCredential } from "@azure/identity";
import { CryptographyClient, KeyClient } from "@azure/keyvault-keys";
import { randomBytes } from "node:crypto";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env("KV_URL");
const hsm = process.env.KV_HSM === "1";
const options = {
  serviceVersion: process.env.KV_API || "7.6",
  disableChallengeResourceVerification: true,
  retryOptions: { maxRetries: 2, retryDelayInMs: 200, maxRetryDelayInMs: 1000 },
};
const credential = new ClientSecretCredential(env("AZURE_TENANT_ID"), env("AZURE_CLIENT_ID"),
  env("AZURE_CLIENT_SECRET"), { authorityHost: env("AZURE_AUTHORITY_HOST"), disableInstanceDiscovery: true });
const client = new KeyClient(url, credential, options);
const poll = { intervalInMs: 100 };

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function create(name) {
  return hsm ? client.createRsaKey(name, { hsm: true, keySize: 2048 }) : client.createKey(name, "RSA", { keySize: 2048 });
}

async function lifecycle(name) {
  let n = 0;
  const ok = (what) => console.log(`ok ${++n} - ${hsm ? "managed HSM" : "vault"}: ${what}`);

  const key = await create(name);
  check(key.id.startsWith(`${url}/keys/${name}/`) && key.properties.version.length === 32, `id ${key.id}`);
  check(key.keyType === (hsm ? "RSA-HSM" : "RSA") && key.properties.enabled === true, "kty and enabled");
  ok(`createKey ${key.properties.version}`);

  const got = await client.getKey(name);
  check(got.id === key.id && got.key.n.length === 256, "getKey latest");
  const byVersion = await client.getKey(name, { version: key.properties.version });
  check(byVersion.id === key.id, "getKey by version");
  ok("getKey (latest and by version)");

  const expiresOn = new Date(Math.floor(Date.now() / 1000 + 86400 * 365) * 1000);
  let p = await client.updateKeyProperties(name, key.properties.version, { enabled: false, expiresOn, tags: { app: "cmkfs" } });
  check(p.properties.enabled === false && p.properties.expiresOn.getTime() === expiresOn.getTime(), "disabled + expiresOn");
  check(p.properties.tags.app === "cmkfs", "tags");
  const crypto0 = new CryptographyClient(key.id, credential, options);
  let refused = false;
  try {
    await crypto0.wrapKey("RSA-OAEP-256", randomBytes(32));
  } catch (e) {
    refused = e.statusCode === 403 && e.code === "Forbidden";
  }
  check(refused, "wrapKey with a disabled key is refused with 403");
  p = await client.updateKeyProperties(name, key.properties.version, { enabled: true });
  check(p.properties.enabled === true && p.properties.expiresOn.getTime() === expiresOn.getTime(), "re-enabled");
  ok("updateKeyProperties (enabled false, expiresOn, tags; wrap refused; enabled true)");

  const policy0 = await client.getKeyRotationPolicy(name);
  check(Array.isArray(policy0.lifetimeActions), "default rotation policy");
  const policy = await client.updateKeyRotationPolicy(name, {
    lifetimeActions: [{ action: "Rotate", timeAfterCreate: "P90D" }, { action: "Notify", timeBeforeExpiry: "P30D" }],
    expiresIn: "P1Y",
  });
  check(policy.expiresIn === "P1Y" && policy.lifetimeActions.length === 2, "policy set");
  const policy2 = await client.getKeyRotationPolicy(name);
  check(policy2.expiresIn === "P1Y" && policy2.lifetimeActions.some((a) => a.action === "Rotate" && a.timeAfterCreate === "P90D"),
    "policy read back");
  ok("get/updateKeyRotationPolicy");

  const rotated = await client.rotateKey(name);
  check(rotated.properties.version !== key.properties.version, "a new version");
  check(Math.abs(rotated.properties.expiresOn.getTime() - (Date.now() + 365 * 86400e3)) < 120e3, "expiry from the policy");
  check((await client.getKey(name)).id === rotated.id, "latest is the rotated version");
  ok(`rotateKey -> ${rotated.properties.version}`);

  await create(`${name}-b`);
  await create(`${name}-c`);
  const names = [];
  for await (const props of client.listPropertiesOfKeys()) names.push(props.name);
  check([name, `${name}-b`, `${name}-c`].every((k) => names.includes(k)), `listPropertiesOfKeys: ${names}`);
  let pages = 0;
  for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 1 })) pages += page.length ? 1 : 0;
  check(pages >= names.length, `paged by one: ${pages} pages for ${names.length} keys`);
  const versions = [];
  for await (const props of client.listPropertiesOfKeyVersions(name)) versions.push(props.version);
  check(versions.length === 2 && versions.includes(key.properties.version) && versions.includes(rotated.properties.version),
    `versions ${versions}`);
  ok(`listPropertiesOfKeys (${names.length} keys, ${pages} pages of one) / listPropertiesOfKeyVersions`);

  const crypto = new CryptographyClient(rotated.id, credential, options);
  const cek = randomBytes(32);
  const wrapped = await crypto.wrapKey("RSA-OAEP-256", cek);
  check(wrapped.keyID === rotated.id && wrapped.result.length === 256, "wrapKey");
  const unwrapped = await crypto.unwrapKey("RSA-OAEP-256", wrapped.result);
  check(Buffer.compare(Buffer.from(unwrapped.result), cek) === 0, "unwrapKey returns the key");
  const enc = await crypto.encrypt({ algorithm: "RSA-OAEP", plaintext: Buffer.from("hello") });
  const dec = await crypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: enc.result });
  check(Buffer.from(dec.result).toString() === "hello", "encrypt/decrypt");
  ok("CryptographyClient wrapKey/unwrapKey, encrypt/decrypt");

  const poller = await client.beginDeleteKey(name, poll);
  const deleted = await poller.pollUntilDone();
  const dp = deleted.properties;
  check(dp.recoveryId === `${url}/deletedkeys/${name}` && dp.scheduledPurgeDate - dp.deletedOn === 90 * 86400e3,
    `DeletedKey ${dp.recoveryId} ${dp.deletedOn} ${dp.scheduledPurgeDate}`);
  let gone = false;
  try {
    await client.getKey(name);
  } catch (e) {
    gone = e.statusCode === 404 && e.code === "KeyNotFound";
  }
  check(gone, "getKey of a deleted key is 404 KeyNotFound");
  const d = await client.getDeletedKey(name);
  check(d.properties.recoveryId === dp.recoveryId && d.properties.recoveryLevel === "Recoverable", "getDeletedKey");
  const deletedNames = [];
  for await (const k of client.listDeletedKeys()) deletedNames.push(k.name);
  check(deletedNames.includes(name), "listDeletedKeys");
  ok("beginDeleteKey / getDeletedKey / listDeletedKeys");

  const recovered = await (await client.beginRecoverDeletedKey(name, poll)).pollUntilDone();
  check(recovered.id === rotated.id, "recovered the latest version");
  check((await crypto.unwrapKey("RSA-OAEP-256", wrapped.result)).result.length === 32, "unwrap after recovery");
  ok("beginRecoverDeletedKey: the key works again");

  await (await client.beginDeleteKey(name, poll)).pollUntilDone();
  let purgeRefused = false;
  try {
    await client.purgeDeletedKey(name);
  } catch (e) {
    purgeRefused = e.statusCode === 403;
  }
  check(purgeRefused, "purge refused under purge protection");
  check((await client.getDeletedKey(name)).name === name, "still recoverable after the refused purge");
  ok("delete again; purgeDeletedKey refused (403) under purge protection");
}

const [cmd, name, version, flag] = process.argv.slice(2);
try {
  if (cmd === "lifecycle") {
    await lifecycle(name);
  } else if (cmd === "create") {
    console.log((await create(name)).id);
  } else if (cmd === "enable") {
    const p = await client.updateKeyProperties(name, version, { enabled: flag === "true" });
    console.log(`${p.id} enabled=${p.properties.enabled}`);
  } else if (cmd === "rotate") {
    console.log((await client.rotateKey(name)).id);
  } else if (cmd === "delete") {
    const d = await (await client.beginDeleteKey(name, poll)).pollUntilDone();
    console.log(d.properties.recoveryId);
  } else if (cmd === "recover") {
    console.log((await (await client.beginRecoverDeletedKey(name, poll)).pollUntilDone()).id);
  } else {
    throw new Error(`usage: kv.mjs lifecycle|create|enable|rotate|delete|recover NAME ...`);
  }
} catch (e) {
  console.log(`not ok - ${cmd} ${name}: ${e.name}: ${e.statusCode ?? ""} ${e.code ?? ""} ${String(e.message).split("\n")[0]}`);
  process.exit(1);
}
