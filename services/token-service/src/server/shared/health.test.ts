import { Code, createClient, createRouterTransport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { Health } from "@latchkey/proto/grpc";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { rejection, startTestServers, type TestServers } from "../../../test-support/test-servers.js";
import { connectRoutes } from "../connect/connect-routes.js";
import { createHealthService, ServingStatus } from "./health.js";

let servers: TestServers;
beforeAll(async () => {
  servers = await startTestServers();
});
afterAll(() => servers.close());

const listeners = {
  connect: () =>
    createConnectTransport({ baseUrl: `http://127.0.0.1:${servers.connect.port}`, httpVersion: "2" }),
  "grpc-js": () => createGrpcTransport({ baseUrl: `http://127.0.0.1:${servers.grpc.port}` }),
};

describe.each(Object.keys(listeners) as (keyof typeof listeners)[])(
  "health on the %s listener",
  (listener) => {
    const client = () => createClient(Health, listeners[listener]());

    it("answers Check for the server as a whole", async () => {
      expect((await client().check({ service: "" })).status).toBe(ServingStatus.SERVING);
    });

    it("answers Check for an unknown service with NOT_FOUND", async () => {
      const error = await rejection(client().check({ service: "no.such.Service" }));
      expect(error.code).toBe(Code.NotFound);
    });

    it("streams the current status, then changes, from Watch", async () => {
      const name = `latchkey.v1.Watched.${listener}`;
      const abort = new AbortController();
      const seen: ServingStatus[] = [];
      const requestId = `watch-${listener}`;
      const options = { signal: abort.signal, headers: { "x-request-id": requestId } };
      for await (const { status } of client().watch({ service: name }, options)) {
        seen.push(status);
        if (status === ServingStatus.SERVICE_UNKNOWN) {
          servers.health.setStatus(name, ServingStatus.SERVING);
        } else if (status === ServingStatus.SERVING) {
          servers.health.setStatus(name, ServingStatus.NOT_SERVING);
        } else {
          abort.abort();
          break;
        }
      }
      expect(seen).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
      // The server sees the client leave: the stream ends, logged as cancelled, not as a failure.
      await vi.waitFor(() => expect(servers.lines.find((l) => l.requestId === requestId)).toBeDefined());
      expect(servers.lines.filter((l) => l.requestId === requestId)).toMatchObject([
        { msg: "rpc", code: "Canceled" },
      ]);
    });
  },
);

describe("health service", () => {
  it("lists every status", async () => {
    const health = createHealthService({ "": ServingStatus.SERVING, "a.B": ServingStatus.NOT_SERVING });
    const client = createClient(Health, createRouterTransport(connectRoutes([health])));
    const { statuses } = await client.list({});
    expect(Object.fromEntries(Object.entries(statuses).map(([k, v]) => [k, v.status]))).toEqual({
      "": ServingStatus.SERVING,
      "a.B": ServingStatus.NOT_SERVING,
    });
  });

  it("on shutdown tells watchers NOT_SERVING, ends their streams and ignores later changes", async () => {
    const health = createHealthService();
    const client = createClient(Health, createRouterTransport(connectRoutes([health])));
    const seen: ServingStatus[] = [];
    for await (const { status } of client.watch({ service: "" })) {
      seen.push(status);
      if (seen.length === 1) {
        health.shutdown();
        health.setStatus("", ServingStatus.SERVING);
      }
    }
    expect(seen).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    expect((await client.check({ service: "" })).status).toBe(ServingStatus.NOT_SERVING);
  });
});
