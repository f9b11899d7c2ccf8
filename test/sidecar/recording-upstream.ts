// The demo app as the upstream, with a record of every request target that reached it, so a test
// can say not only what the client got but whether anything got through to the app at all.
import { type DemoApp, startDemoApp } from "../../services/sidecar/demo/demo-app.js";
import type { RawResponse } from "../harness/http-client.js";

/** The demo app plus what it has seen. */
export interface RecordingUpstream {
  readonly app: DemoApp;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** Request targets (path and query) of every request and upgrade the app received, in order. */
  readonly seen: string[];
}

/** What the demo app echoes for a plain request. */
export interface EchoedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string | undefined>;
  readonly bodyBytes: number;
}

/** Starts the demo app on a free port and records what reaches it. */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const app = await startDemoApp({ port: 0, host: "127.0.0.1" });
  const seen: string[] = [];
  // Registered after the app's own listeners; they only read, so the order does not matter.
  app.server.on("request", (req) => seen.push(req.url ?? ""));
  app.server.on("upgrade", (req) => seen.push(req.url ?? ""));
  return { app, url: `http://127.0.0.1:${app.port}`, seen };
}

/** What the app received, from its echo of a forwarded request. */
export function echoed(response: RawResponse): EchoedRequest {
  return response.json<EchoedRequest>();
}

/**
 * The identity headers the app received (`x-latchkey-*`, and any spelling an app may merge with them:
 * `x_latchkey_owner`, `x.latchkey.owner`), as name-value pairs.
 */
export function identityOf(response: RawResponse): Array<[string, string | undefined]> {
  return Object.entries(echoed(response).headers).filter(([name]) =>
    name.replace(/[_.]/g, "-").startsWith("x-latchkey-"),
  );
}
