// Test-only support for the serving-layer tests: a trivial TeamService built
// on the real generated descriptors, a pino logger that keeps its lines, and
// both listeners started on free ports.
import { Code, ConnectError } from "@connectrpc/connect";
import { TeamService } from "@latchkey/proto";
import { pino } from "pino";
import { createConnectServer } from "../src/server/connect/connect-server.js";
import { createGrpcServer } from "../src/server/grpc-js/grpc-server.js";
import { createHealthService, type HealthService } from "../src/server/shared/health.js";
import { createReflectionServices } from "../src/server/shared/reflection.js";
import type { RunningServer, TlsOptions } from "../src/server/shared/running-server.js";
import { registerService } from "../src/server/shared/service-registration.js";

/** A promise the test resolves by hand: how a call is held in flight without timers. */
export interface Gate {
  readonly entered: Promise<void>;
  enter(): void;
  readonly opened: Promise<void>;
  open(): void;
}

export function createGate(): Gate {
  let enter = () => {};
  let open = () => {};
  const entered = new Promise<void>((resolve) => {
    enter = resolve;
  });
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { entered, enter, opened, open };
}

/** The ConnectError a call failed with; throws if it succeeded. */
export async function rejection(call: Promise<unknown>): Promise<ConnectError> {
  try {
    await call;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

export type LogLine = Record<string, unknown> & { msg: string; level: number };

export function captureLogger() {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
  );
  return { logger, lines };
}

/** The secret a failing handler throws: it must reach the log and never the wire. */
export const LEAKY_MESSAGE = "connect ECONNREFUSED postgres://admin:hunter2@db";

/**
 * TeamService for serving tests. `createTeam` by name: `missing` throws
 * NotFound, `boom` throws a plain Error, `slow` waits for `gate`, anything else
 * answers a team whose id is the request id and whose name says the protocol.
 * `listTeams` answers one team naming the protocol and the `x-test` header.
 */
export function createTestTeams(gate: Gate = createGate()) {
  return registerService(TeamService, {
    async createTeam(request, ctx) {
      switch (request.name) {
        case "missing":
          throw new ConnectError("no such team", Code.NotFound);
        case "boom":
          throw new Error(LEAKY_MESSAGE);
        case "slow":
          gate.enter();
          await gate.opened;
          break;
      }
      return { team: { id: ctx.requestId, name: `${request.name}/${ctx.protocol}` } };
    },
    async listTeams(_request, ctx) {
      return {
        teams: [{ id: "team_1", name: `${ctx.protocol}:${ctx.requestHeader.get("x-test") ?? ""}` }],
        nextPageToken: ctx.peer === undefined ? "" : "has-peer",
      };
    },
  });
}

export interface TestServers {
  readonly connect: RunningServer;
  readonly grpc: RunningServer;
  readonly health: HealthService;
  readonly gate: Gate;
  readonly lines: LogLine[];
  close(timeoutMs?: number): Promise<void>;
}

/** Both listeners on 127.0.0.1 free ports, serving TeamService, health and reflection. */
export async function startTestServers(tls?: TlsOptions): Promise<TestServers> {
  const { logger, lines } = captureLogger();
  const gate = createGate();
  const health = createHealthService();
  const services = [createTestTeams(gate), health];
  const all = [...services, ...createReflectionServices(services)];
  const listen = { host: "127.0.0.1", port: 0 };
  const connect = await createConnectServer({ services: all, listen, logger, ...(tls ? { tls } : {}) });
  const grpc = await createGrpcServer({ services: all, listen, logger, ...(tls ? { tls } : {}) });
  return {
    connect,
    grpc,
    health,
    gate,
    lines,
    close: async (timeoutMs = 5_000) => {
      gate.open();
      health.shutdown();
      await Promise.all([connect.close(timeoutMs), grpc.close(timeoutMs)]);
    },
  };
}
