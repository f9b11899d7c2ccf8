// The admin console in a real browser against the real stack: token-service on PostgreSQL and NATS,
// a sidecar process in front of the demo app. An admin signs in, makes a team and a key, copies the
// token, uses it through the sidecar, sees the request in the key's chart, rotates, revokes (and
// sees the propagation confirmation), and reads the audit log; a wrong key gets a clear message.
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { send } from "../harness/http-client.js";
import { type NatsServer, startNats } from "../harness/index.js";
import { eventually } from "../harness/wait.js";
import { type RecordingUpstream, startRecordingUpstream } from "../sidecar/recording-upstream.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { ROOT_KEY, startTestService, type TestService } from "../token-service/start.js";
import { expectText, launchChromium, leakedPlaces, openPage, type WatchedPage } from "./console-browser.js";
import { pngStats } from "./png-stats.js";

/** Where the screenshot of the key detail page goes (and, with LATCHKEY_UPDATE_SCREENSHOT=1, the README's). */
const SCREENSHOT = ".tmp/console-key-detail.png";
const DOCS_SCREENSHOT = "docs/console-key-detail.png";

let nats: NatsServer;
let service: TestService;
let upstream: RecordingUpstream;
let sidecar: SidecarProcess;
let browser: Browser;
let watched: WatchedPage;
let consoleUrl: string;
/** What the flow made, step by step. */
const made = { teamId: "", keyId: "", token: "", newKeyId: "" };

beforeAll(async () => {
  if (!existsSync(new URL("../../packages/console/dist/index.html", import.meta.url))) {
    throw new Error("the console is not built: run `npm run build` first (npm test does)");
  }
  mkdirSync(".tmp", { recursive: true });
  nats = await startNats();
  [service, browser] = await Promise.all([
    startTestService({
      natsUrl: nats.url,
      settings: { keychainMasterKey: `test-1:${randomBytes(32).toString("base64")}` },
    }),
    launchChromium(),
  ]);
  upstream = await startRecordingUpstream();
  sidecar = await spawnSidecar({
    upstream: upstream.url,
    tokenServiceUrl: service.grpcUrl,
    natsUrl: nats.url,
    env: { LATCHKEY_USAGE_FLUSH_MS: "200" },
  });
  consoleUrl = `${service.connectUrl}/console/`;
  watched = await openPage(browser, service.connectUrl);
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await sidecar?.stop();
  await upstream?.app.close();
  await service?.close();
  await nats?.stop();
});

describe("the admin console in a browser", () => {
  it("tells a wrong key apart from a right one, in words", async () => {
    const { page } = watched;
    await page.goto(consoleUrl);
    await page.getByLabel("Admin key").fill("lk_live_this-is-not-a-key-of-this-deployment");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.getByRole("alert"), /This key was not accepted/);
    // A real key without the admin scope is told so, differently.
    const { teamId } = await service.teamWithAdmin("readers");
    const reader = await service.tokens().issue({ teamId, name: "reader", scopes: ["read"] });
    await page.getByLabel("Admin key").fill(reader.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.getByRole("alert"), /not an admin key/);
    await page.screenshot({ path: ".tmp/console-sign-in.png" });
    expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
  });

  it("signs in with the root key and creates a team", async () => {
    const { page } = watched;
    await page.getByLabel("Admin key").fill(ROOT_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expectText(page.getByTestId("identity"), /root key/);
    await page.getByLabel("New team").fill("console-e2e");
    await page.getByRole("button", { name: "Create team" }).click();
    await page.waitForURL(/#\/teams\/team_/);
    made.teamId = /#\/teams\/(team_[A-Za-z0-9]+)/.exec(page.url())?.[1] ?? "";
    expect(made.teamId).not.toBe("");
    await expectText(page.getByRole("heading", { level: 1 }), new RegExp(made.teamId));
    await expectText(page.locator(".state-empty"), /no keys yet/);
  });

  it("creates a key, shows its token once with a warning, and copies it", async () => {
    const { page } = watched;
    await page.getByRole("button", { name: "New key" }).click();
    await page.getByLabel("Name").first().fill("browser-made");
    await page.getByLabel("Scopes").fill("read");
    await page.getByLabel("Metadata").fill("owner=console-test");
    await page.getByRole("button", { name: "Create key" }).click();
    const field = page.getByTestId("new-token");
    made.token = await field.inputValue();
    expect(made.token).toMatch(/^lk_live_/);
    await expectText(page.getByRole("note"), /shown only once/);
    await page.getByRole("button", { name: "Copy" }).click();
    await expectText(page.getByText("Copied to the clipboard."), /Copied/);
    expect(await page.evaluate<string>("navigator.clipboard.readText()")).toBe(made.token);
    await page.getByRole("button", { name: "I have stored it" }).click();
    expect(await page.getByTestId("new-token").count()).toBe(0);
    await expectText(page.getByTestId("keys"), /browser-made/);
    await page.screenshot({ path: ".tmp/console-keys.png", fullPage: true });
  });

  it("filters the key list by name, environment and state (on the server)", async () => {
    const { page } = watched;
    await service.tokens().issue({ teamId: made.teamId, name: "staging-worker", environment: "staging" });
    await page.reload();
    await expectText(page.getByTestId("keys"), /staging-worker/);
    await page.getByLabel("Name", { exact: true }).fill("nothing-like-it");
    await expectText(page.locator(".state-empty"), /No key matches/);
    await page.getByLabel("Name", { exact: true }).fill("BROWSER");
    await expect.poll(() => page.getByTestId("keys").locator("tbody tr").count()).toBe(1);
    await page.getByLabel("State").selectOption("revoked");
    await expectText(page.locator(".state-empty"), /No key matches/);
    await page.getByLabel("State").selectOption("active");
    await page.getByLabel("Name", { exact: true }).fill("");
    await page.getByLabel("Environment", { exact: true }).fill("staging");
    await expect
      .poll(async () => page.getByTestId("keys").locator("tbody tr").allTextContents())
      .toEqual([expect.stringContaining("staging-worker")]);
    await page.getByLabel("Environment", { exact: true }).fill("");
    await page.getByLabel("State").selectOption("current");
    await expect.poll(() => page.getByTestId("keys").locator("tbody tr").count()).toBe(2);
  });

  it("the token works through the sidecar, and the key's chart shows the request", async () => {
    const { page } = watched;
    const through = await send(sidecar.url, "GET", "/things", { authorization: `Bearer ${made.token}` });
    expect(through.status).toBe(200);
    await page.getByRole("link", { name: "browser-made" }).click();
    await page.waitForURL(/#\/keys\/key_/);
    made.keyId = /#\/keys\/(key_[A-Za-z0-9]+)/.exec(page.url())?.[1] ?? "";
    await expectText(page.getByTestId("key-facts"), /owner=console-test/);
    // Counted by the sidecar, flushed over NATS, stored by the token-service: refresh until it shows.
    await eventually(
      async () => {
        await page.getByRole("button", { name: "Refresh" }).first().click();
        return page.getByTestId("usage-allowed").textContent();
      },
      (text) => text === "1",
      { timeoutMs: 15_000, intervalMs: 500, what: "the request in the chart" },
    );
    expect(await page.locator("rect.bar-allowed").count()).toBe(1);
    // The same refresh read the key again: its last use and its 24-hour count moved.
    await expectText(page.getByTestId("key-facts"), /Requests, 24 h\s*1/);
    expect(await page.getByTestId("key-facts").textContent()).not.toMatch(/Last used\s*never/);
  });

  it("the key detail page renders (screenshot under .tmp/, checked for content)", async () => {
    const { page } = watched;
    mkdirSync(".tmp", { recursive: true });
    await page.getByRole("heading", { name: "History" }).scrollIntoViewIfNeeded();
    await page.evaluate("scrollTo(0, 0)");
    const png = await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const stats = pngStats(png);
    expect(stats.width).toBe(1280);
    expect(stats.colours).toBeGreaterThan(40);
    expect(stats.nonBackground).toBeGreaterThan(0.2);
    if (process.env.LATCHKEY_UPDATE_SCREENSHOT === "1") copyFileSync(SCREENSHOT, DOCS_SCREENSHOT);
  });

  it("disables and enables the key, and edits its scopes and metadata", async () => {
    const { page } = watched;
    const status = async () =>
      (await send(sidecar.url, "GET", "/things", { authorization: `Bearer ${made.token}` })).status;
    await page.getByRole("button", { name: "Disable key" }).click();
    await expectText(page.locator("h1 .badge"), /disabled/);
    // The disable reached the sidecar's cache as a key event.
    await eventually(status, (code) => code === 401, { what: "the sidecar refusing the disabled key" });
    await page.getByRole("button", { name: "Enable key" }).click();
    await expectText(page.locator("h1 .badge"), /active/);
    await eventually(status, (code) => code === 200, { what: "the sidecar accepting it again" });
    await page.getByLabel("Scopes", { exact: true }).fill("read chats:write");
    await page.getByLabel("Metadata (name=value lines)").fill("owner=console-test\nregion=eu");
    await page.getByRole("button", { name: "Save changes" }).click();
    await expectText(page.getByTestId("key-facts"), /read chats:write/);
    await expectText(page.getByTestId("key-facts"), /region=eu/);
    const { key } = await service.tokens().get({ keyId: made.keyId });
    expect(key?.scopes).toEqual(["read", "chats:write"]);
    expect(key?.metadata).toEqual({ owner: "console-test", region: "eu" });
    // A line that is not name=value is refused by the form, naming the line; nothing is sent.
    await page.getByLabel("Metadata (name=value lines)").fill("owner=console-test\nno equals sign");
    await page.getByRole("button", { name: "Save changes" }).click();
    await expectText(page.getByRole("alert"), /metadata line 2: write it as name=value/);
    expect((await service.tokens().get({ keyId: made.keyId })).key?.metadata).toEqual({
      owner: "console-test",
      region: "eu",
    });
  });

  it("rotates with a grace period: a new token once, the old key still works", async () => {
    const { page } = watched;
    await page.getByLabel("Grace period for the old key").selectOption({ label: "1 hour" });
    await page.getByRole("button", { name: "Rotate key" }).click();
    const rotated = await page.getByTestId("new-token").inputValue();
    expect(rotated).toMatch(/^lk_live_/);
    expect(rotated).not.toBe(made.token);
    await expectText(page.locator("h1 .badge"), /expiring/);
    const old = await send(sidecar.url, "GET", "/things", { authorization: `Bearer ${made.token}` });
    expect(old.status).toBe(200);
    const fresh = await send(sidecar.url, "GET", "/things", { authorization: `Bearer ${rotated}` });
    expect(fresh.status).toBe(200);
    // The new key's page shows the old key's traffic beside its own: is it safe to revoke yet?
    await page.getByRole("link", { name: "Open the new key" }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/keys/") && !url.hash.includes(made.keyId));
    await expectText(page.getByRole("note").filter({ hasText: "This key replaced" }), new RegExp(made.keyId));
    await eventually(
      async () => {
        for (const button of await page.getByRole("button", { name: "Refresh" }).all()) await button.click();
        return [
          await page.getByTestId("usage-total").textContent(),
          await page.getByTestId("replaced-total").textContent(),
        ];
      },
      // The old key: its first request, one after it was enabled again, one after the rotation.
      ([own, replaced]) => own === "1" && replaced === "3",
      { timeoutMs: 15_000, intervalMs: 500, what: "the new key's request and the old key's three" },
    );
    await page.screenshot({ path: ".tmp/console-rotated-key.png", fullPage: true });
    await page.goBack();
    await page.waitForURL((url) => url.hash === `#/keys/${made.keyId}`);
  });

  it("revokes and shows how many verifiers confirmed it, and the sidecar refuses the key", async () => {
    const { page } = watched;
    await page.getByLabel("Reason").fill("console test");
    await page.getByRole("button", { name: "Revoke key" }).click();
    await expectText(page.getByRole("alert").filter({ hasText: "permanent" }), /Press again/);
    await page.getByRole("button", { name: "Yes, revoke it" }).click();
    await expectText(page.getByTestId("revoke-confirmation"), /confirmed by 1 of 1 verifiers in \d+ ms/);
    await expectText(page.locator("h1 .badge"), /revoked/);
    const refused = await send(sidecar.url, "GET", "/things", { authorization: `Bearer ${made.token}` });
    expect(refused.status).toBe(401);
    await expectText(page.getByTestId("audit-events"), /key\.revoke/);
  });

  it("reads the audit log, filtered by key", async () => {
    const { page } = watched;
    await page.getByRole("link", { name: "Audit log", exact: true }).click();
    await expectText(page.getByTestId("audit-events"), /team\.create/);
    await page.getByLabel("Key").fill(made.keyId);
    await page.getByRole("button", { name: "Apply filters" }).click();
    const table = page.getByTestId("audit-events");
    // Every row is now about this key: its issue, three updates, rotation and revocation, nothing else.
    await expect
      .poll(async () => (await table.locator("tbody tr .action").allTextContents()).sort(), {
        timeout: 10_000,
      })
      .toEqual(["key.issue", "key.revoke", "key.rotate", "key.update", "key.update", "key.update"]);
    await page.getByLabel("Action").fill("key.rotate");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect.poll(() => table.locator("tbody tr .action").allTextContents()).toEqual(["key.rotate"]);
    // Every key action of the team, by the server's action filter.
    await page.getByLabel("Key").fill("");
    await page.getByLabel("Team").fill(made.teamId);
    await page.getByLabel("Action").fill("key");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await expect
      .poll(async () => new Set(await table.locator("tbody tr .action").allTextContents()))
      .toEqual(new Set(["key.issue", "key.update", "key.rotate", "key.revoke"]));
    await page.screenshot({ path: ".tmp/console-audit.png", fullPage: true });
  });

  it("lists a keychain's secret names and grants with their digest status, never a value", async () => {
    const { page } = watched;
    const keychains = service.keychains();
    const created = await keychains.createKeychain({ teamId: made.teamId, name: "agent chain" });
    const keychainId = created.keychain?.id ?? "";
    const secretValue = `sk_live_${randomBytes(12).toString("hex")}`;
    await keychains.putSecret({ keychainId, name: "STRIPE_SECRET_KEY", value: secretValue });
    const sha256 = randomBytes(32).toString("hex");
    await keychains.registerPackageVersion({
      teamId: made.teamId,
      packageVersion: {
        name: "@console/agent",
        version: "v1",
        public: true,
        sha256,
        required: [{ name: "STRIPE_SECRET_KEY" }],
      },
    });
    await keychains.grantPackage({
      keychainId,
      packageName: "@console/agent",
      version: "v1",
      sha256,
      names: ["STRIPE_SECRET_KEY"],
    });
    // The package's runtime presents other contents: refused, and the console says why.
    await expect(
      service.keychains(created.secret).resolveSecrets({
        packageName: "@console/agent",
        version: "v1",
        sha256: randomBytes(32).toString("hex"),
      }),
    ).rejects.toThrow(/digest_mismatch/);
    await page.goto(`${consoleUrl}#/keychains?teamId=${made.teamId}`);
    await page.getByRole("button", { name: /Show secrets and grants/ }).click();
    await expectText(page.getByTestId("secret-names"), /STRIPE_SECRET_KEY/);
    await expectText(page.getByTestId("grants"), /@console\/agent@v1 shares STRIPE_SECRET_KEY/);
    await expectText(page.getByTestId("grants"), /refused .*: digest_mismatch/);
    expect(await page.content()).not.toContain(secretValue);
    await page.screenshot({ path: ".tmp/console-keychains.png", fullPage: true });
  });

  it("kept the key out of URLs, cookies and localStorage, and broke no CSP rule", async () => {
    expect(await leakedPlaces(watched, ROOT_KEY)).toEqual([]);
    expect(await watched.page.evaluate<string[]>("Object.keys(sessionStorage)")).toEqual([
      "latchkey.console.adminKey",
    ]);
    expect(watched.problems).toEqual([]);
  });

  it("signs out: the key is gone from the tab", async () => {
    const { page } = watched;
    await page.getByRole("button", { name: "Sign out" }).click();
    await expectText(page.getByRole("button", { name: "Sign in" }), /Sign in/);
    expect(await page.evaluate<number>("sessionStorage.length")).toBe(0);
  });
});
