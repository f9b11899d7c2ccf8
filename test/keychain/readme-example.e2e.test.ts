// The README's keychain walk, end to end, as an operator types it: the seed's instant.package.json
// (packages/keychain/examples/stripe-customers) registered with `latchkey-keychain register-request
// | buf curl`, a keychain with STRIPE_SECRET_KEY, the seed's keychain configuration granted with
// `latchkey-keychain grant-requests | buf curl`, then `curl` through the sidecar
// (services/sidecar/examples/policy-002-packages.yaml) to the package runtime
// (packages/keychain/examples/package-host.ts), whose package calls a Stripe stand-in with the
// secret. Then the package's files change (a hijacked publish) and the same call is refused.
// Real PostgreSQL, NATS, sidecar process, buf and the CLI.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createNatsKeyEventBus, type NatsKeyEventBus } from "@latchkey/events";
import { createKeychainResolver, type KeychainResolver } from "@latchkey/keychain";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PackageHost, startPackageHost } from "../../packages/keychain/examples/package-host.js";
import { send } from "../harness/http-client.js";
import { natsUrl } from "../harness/index.js";
import { runToExit } from "../harness/run-command.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { auditRows, masterKey } from "../token-service/keychain-fixtures.js";
import { ROOT_KEY, startTestService, type TestService } from "../token-service/start.js";

const run = promisify(execFile);
const BUF = resolve("node_modules/.bin/buf");
const EXAMPLE = resolve("packages/keychain/examples/stripe-customers");
const CONFIGURATION = resolve("packages/keychain/examples/keychain.json");
const POLICY = readFileSync(resolve("services/sidecar/examples/policy-002-packages.yaml"), "utf8");
const STRIPE_KEY = "sk_live_readme-example-0123456789abcdef";

let service: TestService;
let bus: NatsKeyEventBus;
let resolver: KeychainResolver;
let runtime: PackageHost;
let sidecar: SidecarProcess;
let stripe: Server;
const stripeSaw: string[] = [];
let work: string;
let packageDir: string;

/** `buf curl` against the native gRPC port, with the request body on stdin (`-d @-`). */
async function bufCurl(procedure: string, body: string, bearer = ROOT_KEY): Promise<Record<string, unknown>> {
  const url = `http://127.0.0.1:${service.handle.grpcPort}/latchkey.v1.KeychainService/${procedure}`;
  const headers = ["-H", `Authorization: Bearer ${bearer}`];
  const args = ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...headers, "-d", "@-", url];
  const { code, stdout, stderr } = await runToExit(BUF, args, { stdin: body });
  if (code !== 0) throw new Error(`buf curl ${procedure}: ${stderr}`);
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** `latchkey-keychain …` (the package's CLI, from its sources): its standard output. */
async function keychainCli(...args: string[]): Promise<string> {
  const { stdout } = await run(
    process.execPath,
    ["--conditions=@latchkey/source", "--import", "tsx", "packages/keychain/src/cli.ts", ...args],
    { timeout: 30_000 },
  );
  return stdout;
}

const callPackage = (secret: string) =>
  send(
    sidecar.url,
    "POST",
    "/endpoint-name",
    {
      host: "user--package.pkg.example",
      authorization: `Bearer ${secret}`,
      "content-type": "application/json",
    },
    '{"some":"json"}',
  );

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "latchkey-readme-keychain-"));
  packageDir = join(work, "stripe-customers");
  cpSync(EXAMPLE, packageDir, { recursive: true });
  stripe = createServer((req, res) => {
    stripeSaw.push(req.headers.authorization ?? "");
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ data: [{ id: "cus_1" }, { id: "cus_2" }] }));
  });
  await new Promise<void>((done) => stripe.listen(0, "127.0.0.1", done));
  process.env.STRIPE_API_BASE = `http://127.0.0.1:${(stripe.address() as AddressInfo).port}`;
  service = await startTestService({
    natsUrl: natsUrl(),
    settings: { keychainMasterKey: masterKey("readme") },
  });
  bus = createNatsKeyEventBus({ servers: natsUrl(), name: "package-host" });
  resolver = createKeychainResolver({ tokenService: service.grpcUrl, events: bus });
  runtime = await startPackageHost({
    packages: [{ dir: packageDir, version: "v-20250101" }],
    resolver,
    domain: "pkg.example",
  });
  sidecar = await spawnSidecar({
    upstream: `http://127.0.0.1:${runtime.port}`,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: natsUrl(),
    policy: POLICY,
  });
}, 120_000);

afterAll(async () => {
  await sidecar?.stop();
  await runtime?.close();
  await resolver?.close();
  await bus?.close();
  await service?.close();
  stripe?.close();
  delete process.env.STRIPE_API_BASE;
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

// The CLI runs as a tsx process (10–20 s each on a busy two-core machine), three times in the first test.
describe("the README's keychain walk with the seed's instant.package.json", { timeout: 180_000 }, () => {
  let secret: string;

  it("registers the package, fills and grants a keychain, and the package gets its Stripe key", async () => {
    const { team } = await service.teams().createTeam({ name: "readme-keychain" });
    const teamId = team?.id ?? "";
    const register = await keychainCli("register-request", packageDir, "v-20250101", "--team", teamId);
    const registered = await bufCurl("RegisterPackageVersion", register);
    const digest = (registered.packageVersion as { sha256: string }).sha256;
    expect(digest).toBe((await keychainCli("digest", packageDir)).trim());
    expect(registered.packageVersion).toMatchObject({
      name: "@user/package",
      public: true,
      required: [{ name: "STRIPE_SECRET_KEY", description: "Your Stripe secret key" }],
    });

    const created = await bufCurl("CreateKeychain", JSON.stringify({ teamId, name: "my agent" }));
    secret = created.secret as string;
    const keychainId = (created.keychain as { id: string }).id;
    await bufCurl("PutSecret", JSON.stringify({ keychainId, name: "STRIPE_SECRET_KEY", value: STRIPE_KEY }));

    // The seed's keychain configuration, with the digest the registry gave.
    const configuration = join(work, "keychain.json");
    writeFileSync(configuration, readFileSync(CONFIGURATION, "utf8").replace("SOME-SHA256-HASH-...", digest));
    const grants = (await keychainCli("grant-requests", configuration, keychainId)).trim().split("\n");
    expect(grants).toHaveLength(1);
    const granted = await bufCurl("GrantPackage", grants[0] as string);
    expect(granted.grant).toMatchObject({ packageName: "@user/package", names: ["STRIPE_SECRET_KEY"] });

    const response = await callPackage(secret);
    expect(response.status).toBe(200);
    expect(response.json()).toEqual({ stripeStatus: 200, customers: ["cus_1", "cus_2"] });
    expect(stripeSaw.at(-1)).toBe(`Bearer ${STRIPE_KEY}`);
    expect(response.body).not.toContain(STRIPE_KEY);
  });

  it("refuses the same call once the package's contents change, with an audit row", async () => {
    writeFileSync(
      join(packageDir, "index.js"),
      `${readFileSync(join(packageDir, "index.js"), "utf8")}\n// a hijacked publish\nexport const exfiltrate = true;\n`,
    );
    const before = stripeSaw.length;
    const response = await callPackage(secret);
    expect(response.status).toBe(403);
    expect(response.json()).toMatchObject({ error: { code: "refused", reason: "digest_mismatch" } });
    expect(stripeSaw).toHaveLength(before);
    const refusals = await auditRows(service, "keychain.resolve.refused");
    expect(refusals.at(-1)?.details).toMatchObject({ reason: "digest_mismatch", package: "@user/package" });
  });

  it("refuses a caller without the keychain secret at the sidecar, before the runtime", async () => {
    expect(
      (await send(sidecar.url, "POST", "/endpoint-name", { host: "user--package.pkg.example" })).status,
    ).toBe(401);
  });
});
