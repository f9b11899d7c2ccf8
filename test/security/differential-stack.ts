// Everything the differential test sends requests through, all real and each in its own place:
// the token-service (in this process, on the run's PostgreSQL and NATS) issuing real keys; for
// each policy variant and each app upstream, a sidecar process in proxy mode, Debian's nginx
// running the shipped deploy/nginx/latchkey-auth-request.conf (ports rewritten) asking that
// sidecar's forward-auth endpoint, and the recorded Traefik ForwardAuth shape running the shipped
// deploy/traefik example the same way (Traefik itself cannot be installed here); and the apps: one node:http server running three routers side
// by side, and a wsgiref server.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { generateToken } from "@latchkey/token";
import { natsUrl } from "../harness/index.js";
import { type NginxServer, startNginxExample } from "../harness/nginx.js";
import { startTraefikForwardAuthShape } from "../harness/traefik-forward-auth.js";
import { type SidecarProcess, spawnSidecar } from "../sidecar/sidecar-process.js";
import { startTestService, type TestService } from "../token-service/start.js";
import { routeExpressLike } from "./apps/express-like-router.js";
import type { AppUpstream, HandlerRun } from "./apps/handler-run.js";
import { identityField } from "./apps/handler-run.js";
import { startNodeAppHost } from "./apps/node-app-host.js";
import { routeRawPath } from "./apps/raw-path-router.js";
import { routeTomcatLike } from "./apps/tomcat-like-router.js";
import { startWsgiApp } from "./apps/wsgi-app.js";
import {
  type AttackCase,
  type IDENTITY_FIELDS,
  type PolicyVariant,
  type RenderContext,
  renderAttack,
  SYMBOLIC_CREDENTIALS,
} from "./attack-case.js";
import { judge, type Mode, type OracleKeys, type SentRequest, type Violation } from "./oracle.js";
import { exchangeRaw, type RawExchange, type RawRequest } from "./raw-exchange.js";

const EXAMPLE_POLICY = new URL("../../services/sidecar/examples/policy.yaml", import.meta.url);

/** One way into one upstream: through a sidecar (proxy), or nginx or the Traefik shape asking a sidecar. */
export interface Target {
  readonly policy: PolicyVariant;
  readonly mode: Mode;
  readonly upstream: AppUpstream;
  /** Where the client connects: the sidecar's port, or nginx's. */
  readonly port: number;
  /** `proxy/node`, `forward-auth/wsgi`, … */
  readonly label: string;
}

/** What one attack did on every target of its policy. */
export interface AttackOutcome {
  readonly violations: readonly Violation[];
  /** Statuses of the answers per target, for diagnostics. */
  readonly answers: ReadonlyArray<{ readonly target: string; readonly exchange: RawExchange }>;
}

/** The running stack. */
export interface DifferentialStack {
  readonly targets: readonly Target[];
  readonly keys: OracleKeys;
  /** Credentials as placeholders: for reports. */
  readonly symbolic: RenderContext;
  /** Sends an attack to every target of its policy and judges every handler run it caused. */
  attack(attack: AttackCase): Promise<AttackOutcome>;
  /**
   * Writes `requests(caseId)` on one connection to `target` and judges the handler runs they
   * caused as requests carrying `sent`'s credential (each `x-case-id` should start with `caseId`).
   */
  exchange(
    target: Target,
    requests: (context: RenderContext, caseId: string) => RawRequest[],
    sent: Pick<SentRequest, "credential" | "place">,
  ): Promise<{ exchange: RawExchange; violations: Violation[] }>;
  close(): Promise<void>;
}

/** Options of {@link startDifferentialStack}. */
export interface DifferentialStackOptions {
  /** How long one exchange may take before it counts as timed out. */
  readonly exchangeTimeoutMs: number;
}

/**
 * Starts the stack, issues a key with `read` and one with `admin`, and calibrates: a plain
 * authorized request per key through every target, to learn which identity headers the apps
 * see for each key when nothing is wrong.
 */
export async function startDifferentialStack(options: DifferentialStackOptions): Promise<DifferentialStack> {
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
  };
  try {
    const cronSecret = randomBytes(24).toString("base64url");
    const [service, node, wsgi] = await Promise.all([
      startTestService({ natsUrl: natsUrl() }),
      startNodeAppHost({
        stacks: [
          { name: "raw-path", route: routeRawPath },
          { name: "express-like", route: routeExpressLike },
          { name: "tomcat-like", route: routeTomcatLike },
        ],
      }),
      startWsgiApp(),
    ]);
    closers.push(
      () => service.close(),
      () => node.close(),
      () => wsgi.close(),
    );
    const upstreams = [node, wsgi];
    const keys = await issueKeys(service);

    const example = readFileSync(EXAMPLE_POLICY, "utf8");
    const allPrivate = example.replace(/^preset: reads-public$/m, "preset: all-private");
    if (allPrivate === example) throw new Error("examples/policy.yaml no longer says `preset: reads-public`");
    const policies: Record<PolicyVariant, string> = { example, "all-private": allPrivate };

    const targets: Target[] = [];
    const starts: Array<Promise<void>> = [];
    for (const policy of ["example", "all-private"] as const) {
      for (const upstream of upstreams) {
        starts.push(
          (async () => {
            const sidecar: SidecarProcess = await spawnSidecar({
              upstream: `http://127.0.0.1:${upstream.port}`,
              tokenServiceUrl: service.grpcUrl,
              natsUrl: natsUrl(),
              policy: policies[policy],
              env: { CRON_SECRET: cronSecret },
            });
            closers.push(() => sidecar.stop());
            const nginx: NginxServer = await startNginxExample({
              sidecarPort: sidecar.port,
              appPort: upstream.port,
            });
            closers.push(() => nginx.stop());
            const traefik = await startTraefikForwardAuthShape({
              sidecarPort: sidecar.port,
              appPort: upstream.port,
            });
            closers.push(() => traefik.stop());
            targets.push(
              { policy, mode: "proxy", upstream, port: sidecar.port, label: `proxy/${upstream.name}` },
              {
                policy,
                mode: "forward-auth",
                upstream,
                port: nginx.port,
                label: `forward-auth/${upstream.name}`,
              },
              { policy, mode: "traefik", upstream, port: traefik.port, label: `traefik/${upstream.name}` },
            );
          })(),
        );
      }
    }
    const started = await Promise.allSettled(starts);
    for (const result of started) if (result.status === "rejected") throw result.reason;
    targets.sort((a, b) => a.label.localeCompare(b.label) || a.policy.localeCompare(b.policy));

    const real: RenderContext = {
      credentials: {
        read: keys.read.token,
        admin: keys.admin.token,
        garbage: generateToken({ prefix: "lk", environment: "live" }),
        cron: cronSecret,
      },
      adminIdentity: keys.admin.identity,
      host: "app.test",
    };
    const symbolic: RenderContext = { ...real, credentials: SYMBOLIC_CREDENTIALS };

    let caseNo = 0;
    const sentById = new Map<string, SentRequest>();
    const drainRuns = async () => (await Promise.all(upstreams.map((upstream) => upstream.drain()))).flat();
    const judgeRuns = (runs: readonly HandlerRun[], fallback: SentRequest, oracleKeys: OracleKeys) =>
      runs.flatMap((run) => {
        const sent =
          (run.caseId === undefined ? undefined : sentById.get(run.caseId.replace(/\.f$/, ""))) ?? fallback;
        // The follow-up request carries no credential of its own.
        const own = run.caseId?.endsWith(".f") ? { ...sent, credential: "none" as const } : sent;
        return judge(run, own, oracleKeys);
      });

    // Calibration: what the apps see for each key when the request is plain and authorized.
    const legitimate = { read: new Set<string>(), admin: new Set<string>() };
    for (const name of ["read", "admin"] as const) {
      await drainRuns();
      await Promise.all(
        targets.map((target) =>
          exchangeRaw(
            target.port,
            [
              {
                bytes: Buffer.from(
                  `GET /events HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer ${real.credentials[name]}\r\nConnection: close\r\n\r\n`,
                ),
                head: false,
              },
            ],
            options.exchangeTimeoutMs,
          ),
        ),
      );
      const runs = await drainRuns();
      for (const run of runs) {
        for (const [header, value] of run.identityHeaders)
          legitimate[name].add(`${identityField(header)}=${value}`);
      }
      const stacks = new Set(runs.filter((run) => run.handler === "events").map((run) => run.stack));
      if (stacks.size !== 4 || !legitimate[name].has(`x-latchkey-key-id=${keys[name].id}`)) {
        throw new Error(
          `calibration: GET /events with the ${name} key did not reach every stack with its identity (${[...stacks].join(", ")})`,
        );
      }
    }
    const oracleKeys: OracleKeys = {
      read: { id: keys.read.id, scopes: ["read"], legitimate: legitimate.read },
      admin: { id: keys.admin.id, scopes: ["admin"], legitimate: legitimate.admin },
      secrets: new Map([
        ["read-key", keys.read.token],
        ["admin-key", keys.admin.token],
        ["cron-secret", cronSecret],
      ]),
    };

    return {
      targets,
      keys: oracleKeys,
      symbolic,
      async attack(attack) {
        const chosen = targets.filter((target) => target.policy === attack.policy);
        const base = ++caseNo;
        const answers = await Promise.all(
          chosen.map(async (target, index) => {
            const caseId = `${base}.${index}`;
            sentById.set(caseId, {
              policy: attack.policy,
              mode: target.mode,
              credential: attack.credential,
              place: attack.place,
            });
            const exchange = await exchangeRaw(
              target.port,
              renderAttack(attack, real, caseId),
              options.exchangeTimeoutMs,
            );
            return { target: target.label, exchange };
          }),
        );
        const fallback: SentRequest = {
          policy: attack.policy,
          mode: "proxy",
          credential: "none",
          place: "bearer",
        };
        const violations = judgeRuns(await drainRuns(), fallback, oracleKeys);
        return { violations, answers };
      },
      async exchange(target, requests, sent) {
        const caseId = `${++caseNo}.0`;
        const full: SentRequest = { policy: target.policy, mode: target.mode, ...sent };
        sentById.set(caseId, full);
        await drainRuns();
        const exchange = await exchangeRaw(target.port, requests(real, caseId), options.exchangeTimeoutMs);
        // Whatever the app was going to run for these bytes has been recorded before it answered;
        // a short wait covers a request it reads only after its answer to the first.
        await new Promise((resolve) => setTimeout(resolve, 100));
        return {
          exchange,
          violations: judgeRuns(await drainRuns(), { ...full, credential: "none" }, oracleKeys),
        };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

interface IssuedKey {
  readonly token: string;
  readonly id: string;
  readonly identity: Record<(typeof IDENTITY_FIELDS)[number], string>;
}

async function issueKeys(service: TestService): Promise<{ read: IssuedKey; admin: IssuedKey }> {
  const teamId = (await service.teams().createTeam({ name: "security-differential" })).team?.id ?? "";
  const issue = async (name: string, scope: string): Promise<IssuedKey> => {
    // Each key has an owner, so a client can replay another key's real owner header as well.
    const owner = `${name}-owner`;
    const issued = await service
      .tokens()
      .issue({ teamId, name, scopes: [scope], environment: "live", owner });
    const id = issued.key?.id ?? "";
    return {
      token: issued.token,
      id,
      identity: {
        "key-id": id,
        "team-id": teamId,
        scopes: scope,
        "key-name": name,
        environment: "live",
        owner,
      },
    };
  };
  return {
    read: await issue("differential-reader", "read"),
    admin: await issue("differential-admin", "admin"),
  };
}
