// What test/harness/global-setup.ts hands to every test through vitest's `inject`.
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** URL of the run-wide PostgreSQL test database (`DATABASE_URL` when set). */
    databaseUrl: string;
    /** URL of the run-wide NATS server with JetStream (`NATS_URL` when set). */
    natsUrl: string;
  }
}
