import { createServer, type Server, connect as tcpConnect } from "node:net";
import { afterEach, expect, it } from "vitest";
import { findFreePort } from "../harness/free-port.js";
import { type PartitionRelay, startPartitionRelay } from "./partition-relay.js";

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

/** A TCP server that answers each connection with its name. */
async function namer(name: string): Promise<string> {
  const server: Server = createServer((socket) => socket.end(name));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  const address = server.address();
  return `nats://127.0.0.1:${typeof address === "object" && address !== null ? address.port : 0}`;
}

function read(relay: PartitionRelay): Promise<string> {
  return new Promise((resolve) => {
    const socket = tcpConnect(Number(new URL(relay.url).port), "127.0.0.1");
    let text = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      text += chunk;
    });
    socket.on("close", () => resolve(text));
    socket.on("error", () => resolve(text));
  });
}

it("sends each connection to the next upstream in turn, skipping one that refuses, as a Service would", async () => {
  const down = `nats://127.0.0.1:${await findFreePort()}`;
  const relay = await startPartitionRelay([await namer("a"), down, await namer("b")]);
  closers.unshift(() => relay.close());
  const answers = [await read(relay), await read(relay), await read(relay)];
  expect(answers).toEqual(["a", "b", "a"]);
});

it("holds a new connection while partitioned and connects it when healed", async () => {
  const relay = await startPartitionRelay(await namer("a"));
  closers.unshift(() => relay.close());
  relay.partition();
  let answer: string | undefined;
  const reading = read(relay).then((text) => {
    answer = text;
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(answer).toBeUndefined();
  relay.heal();
  await reading;
  expect(answer).toBe("a");
});

it("closes a client when no upstream accepts it", async () => {
  const relay = await startPartitionRelay([`nats://127.0.0.1:${await findFreePort()}`]);
  closers.unshift(() => relay.close());
  expect(await read(relay)).toBe("");
});
