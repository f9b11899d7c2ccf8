import { connect } from "node:net";
import { WebSocket } from "undici";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { eventReader, sendRaw } from "../../../test/harness/http-client.js";
import { waitUntil } from "../../../test/harness/wait.js";
import { type SidecarStack, startSidecarStack } from "../test-support/sidecar-stack.js";

let stack: SidecarStack;

beforeAll(async () => {
  stack = await startSidecarStack({
    policy: {
      preset: "all-private",
      rules: [
        { path: "/events", kind: "key", scopes: ["read"], allowQueryToken: true },
        { path: "/ws", kind: "key", scopes: ["read"], allowQueryToken: true },
        ...["/ws-limited", "/refused-ws"].map((path) => ({
          path,
          kind: "key",
          scopes: ["read"],
          rateLimit: [{ name: "ws", limit: 5, window: "1m" }],
        })),
      ],
    },
  });
});

afterAll(() => stack?.close());

function liveCount(): Promise<number> {
  return Promise.resolve(stack.sidecar.liveConnectionCount());
}

describe("server-sent events", () => {
  it("streams events as they are sent, and ends the stream when the key is revoked", async () => {
    const { token, key } = stack.keys.issue({ scopes: ["read"] });
    const response = await fetch(`${stack.url}/events?interval=20`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toBe('id: 0\ndata: {"tick":0}');
    expect(await events.next()).toBe('id: 1\ndata: {"tick":1}');
    expect(await liveCount()).toBe(1);
    await stack.keys.revoke(key);
    let next = await events.next();
    while (next !== undefined) next = await events.next();
    await waitUntil(async () => (await liveCount()) === 0);
    const closed = stack.logLines.find((line) => line.keyId === key.id);
    expect(closed).toMatchObject({ decision: "key", status: 200 });
  });

  it("takes the key from ?token= (EventSource) and keeps it out of the upstream URL", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    const response = await fetch(`${stack.url}/events?interval=20&token=${token}`);
    expect(response.status).toBe(200);
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    expect(await events.next()).toContain('"tick":0');
    await events.cancel();
    await waitUntil(async () => (await liveCount()) === 0);
    expect(stack.logText()).not.toContain(token);
  });

  it("does not end streams of other keys", async () => {
    const kept = stack.keys.issue({ scopes: ["read"] });
    const revoked = stack.keys.issue({ scopes: ["read"] });
    const response = await fetch(`${stack.url}/events?interval=20`, { headers: { "x-api-key": kept.token } });
    const events = eventReader(response.body as ReadableStream<Uint8Array>);
    await events.next();
    await stack.keys.revoke(revoked.key);
    expect(await events.next()).toContain('"tick":1');
    await events.cancel();
  });
});

describe("WebSocket", () => {
  it("passes the upgrade through with identity headers, echoes, and closes with 1008 on revocation", async () => {
    const { token, key } = stack.keys.issue({ scopes: ["read"] });
    const socket = new WebSocket(`ws://127.0.0.1:${stack.sidecar.port}/ws?x=1`, {
      headers: { authorization: `Bearer ${token}`, "x-latchkey-key-id": "key_forged" },
    });
    const messages: string[] = [];
    const waiters: Array<() => void> = [];
    socket.addEventListener("message", (event) => {
      messages.push(String(event.data));
      waiters.shift()?.();
    });
    const nextMessage = () =>
      messages.length > 0
        ? Promise.resolve(messages.shift() as string)
        : new Promise<string>((resolve) => waiters.push(() => resolve(messages.shift() as string)));
    const hello = JSON.parse(await nextMessage()) as { path: string; headers: Record<string, string> };
    expect(hello.path).toBe("/ws?x=1");
    expect(hello.headers["x-latchkey-key-id"]).toBe(key.id);
    expect(hello.headers.authorization).toBeUndefined();
    socket.send("ping-1");
    expect(await nextMessage()).toBe("ping-1");
    socket.send("x".repeat(70_000));
    expect((await nextMessage()).length).toBe(70_000);
    expect(await liveCount()).toBe(1);

    const closeEvent = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.addEventListener("close", (event) => resolve({ code: event.code, reason: event.reason })),
    );
    await stack.keys.revoke(key);
    expect(await closeEvent).toEqual({ code: 1008, reason: "key revoked" });
    await waitUntil(async () => (await liveCount()) === 0);
  });

  it("accepts ?token= on the handshake and removes it", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    const socket = new WebSocket(`ws://127.0.0.1:${stack.sidecar.port}/ws?token=${token}&a=b`);
    const hello = await new Promise<{ path: string }>((resolve) =>
      socket.addEventListener("message", (event) => resolve(JSON.parse(String(event.data)))),
    );
    expect(hello.path).toBe("/ws?a=b");
    socket.close();
  });

  it("carries the route's RateLimit headers on the 101, and on an app's refusal of the handshake", async () => {
    const { token } = stack.keys.issue({ scopes: ["read"] });
    const head = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(stack.sidecar.port, "127.0.0.1", () =>
          socket.write(
            `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${token}\r\n\r\n`,
          ),
        );
        let text = "";
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString("latin1");
          const end = text.indexOf("\r\n\r\n");
          if (end !== -1) {
            socket.destroy();
            resolve(text.slice(0, end));
          }
        });
        socket.on("error", reject);
      });
    const upgraded = await head("/ws-limited");
    expect(upgraded).toMatch(/^HTTP\/1\.1 101 /);
    expect(upgraded).toMatch(/\r\nratelimit-policy: "ws";q=5;w=60\r\n/i);
    expect(upgraded).toMatch(/\r\nratelimit: "ws";r=4;t=\d+/i);
    const refused = await head("/refused-ws");
    expect(refused).toMatch(/^HTTP\/1\.1 404 /);
    expect(refused).toMatch(/\r\nratelimit: "ws";r=4;t=\d+/i);
  });

  it("refuses a handshake without a valid key before reaching the upstream", async () => {
    const handshake = (extra: string) =>
      Buffer.from(
        `GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`,
      );
    const none = await sendRaw(stack.url, handshake(""));
    expect(none).toMatch(/^HTTP\/1\.1 401 /);
    expect(none).toContain('www-authenticate: Bearer realm="latchkey"');
    expect(none).toContain('"code":"unauthenticated"');
    const bad = await sendRaw(stack.url, handshake("Authorization: Bearer lk_test_nope\r\n"));
    expect(bad).toMatch(/^HTTP\/1\.1 401 /);
    expect(bad).toContain('error="invalid_token"');
  });

  it("refuses, counts and logs an upgrade to anything but WebSocket", async () => {
    const metricsUrl = `http://127.0.0.1:${stack.sidecar.adminPort}/metrics`;
    const count = async () => {
      const line = (await (await fetch(metricsUrl)).text())
        .split("\n")
        .find((l) => l.startsWith('latchkey_sidecar_decisions_total{decision="bad_request"'));
      return Number(line?.split(" ")[1] ?? 0);
    };
    const before = await count();
    const response = await sendRaw(
      stack.url,
      Buffer.from(
        "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n",
      ),
    );
    expect(response).toMatch(/^HTTP\/1\.1 400 /);
    expect(response).toContain("Only WebSocket upgrades are supported");
    expect(await count()).toBe(before + 1);
    await vi.waitUntil(() => expect(stack.logText()).toContain('"via":"websocket"'), { timeout: 3_000 });
  });
});

describe("shutdown", () => {
  it("stops accepting, ends open streams and WebSockets (1001), and resolves", async () => {
    const own = await startSidecarStack({
      policy: { default: { kind: "key", scopes: ["read"], allowQueryToken: true } },
    });
    try {
      const { token } = own.keys.issue({ scopes: ["read"] });
      const response = await fetch(`${own.url}/events?interval=20`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const events = eventReader(response.body as ReadableStream<Uint8Array>);
      await events.next();
      const socket = new WebSocket(`ws://127.0.0.1:${own.sidecar.port}/ws?token=${token}`);
      await new Promise((resolve) => socket.addEventListener("message", resolve));
      const closeEvent = new Promise<number>((resolve) =>
        socket.addEventListener("close", (event) => resolve(event.code)),
      );
      await own.sidecar.close();
      let next = await events.next();
      while (next !== undefined) next = await events.next();
      expect(await closeEvent).toBe(1001);
      await expect(fetch(`${own.url}/events`)).rejects.toThrow();
    } finally {
      await own.close();
    }
  });
});
