import type { TestProject } from "vitest/node";
import { startNats } from "./nats.js";
import { startPostgres } from "./postgres.js";

/**
 * vitest global setup: one PostgreSQL and one NATS for the whole run, unless `DATABASE_URL` / `NATS_URL`
 * point at servers already running. Tests read the URLs with `inject("databaseUrl")` / `inject("natsUrl")`
 * and stop them in teardown.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<void>> = [];
  const teardown = async () => {
    await Promise.allSettled(stops.map((stop) => stop()));
  };
  try {
    const [databaseUrl, natsUrl] = await Promise.all([
      fromEnvOr("DATABASE_URL", async () => {
        const server = await startPostgres();
        stops.push(server.stop);
        return server.url;
      }),
      fromEnvOr("NATS_URL", async () => {
        const server = await startNats();
        stops.push(server.dispose);
        return server.url;
      }),
    ]);
    project.provide("databaseUrl", databaseUrl);
    project.provide("natsUrl", natsUrl);
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}

async function fromEnvOr(name: string, start: () => Promise<string>): Promise<string> {
  const value = process.env[name];
  return value !== undefined && value !== "" ? value : start();
}
