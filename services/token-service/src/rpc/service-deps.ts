import type { KeyFormats } from "@latchkey/token";
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import type { AdminAuthenticator } from "../auth/admin-authenticator.js";
import type { Database } from "../db/tables.js";
import type { MasterKeyring } from "../keychains/master-keyring.js";
import type { KeyRowCache } from "../keys/key-row-cache.js";
import type { LastUsedRecorder } from "../keys/last-used-recorder.js";
import type { TokenServiceMetrics } from "../metrics/token-service-metrics.js";
import type { OutboxPublisher } from "../outbox/outbox-publisher.js";
import type { PropagationTracker } from "../outbox/propagation-tracker.js";

/** What the RPC implementations need; built once by `startTokenService`. */
export interface ServiceDeps {
  readonly db: Kysely<Database>;
  readonly logger: Logger;
  /** The key formats this deployment accepts (and, for signed ones, its signing keys). */
  readonly formats: KeyFormats;
  /** The format Issue and Rotate use when neither the request nor the team names one. */
  readonly keyFormat: string;
  /** The most keys one ImportKeys call may carry (`importMaxBatch`); 1000 when left out. */
  readonly importMaxBatch?: number;
  readonly auth: AdminAuthenticator;
  readonly cache: KeyRowCache;
  readonly lastUsed: LastUsedRecorder;
  readonly publisher: OutboxPublisher;
  readonly tracker: PropagationTracker;
  /** The master keys of keychains' data keys; undefined when none is configured (keychain RPCs refuse). */
  readonly keychainKeyring?: MasterKeyring | undefined;
  /**
   * Whether the row cache may answer a caller that accepts `maxStalenessMs`:
   * key events reach this replica and its outbox currency proof is younger
   * than that. When false, Verify reads PostgreSQL.
   */
  readonly rowCacheCurrent: (maxStalenessMs: number) => boolean;
  /** The staleness a Verify request that names none accepts (`verifyCacheMaxStaleMs`). */
  readonly verifyCacheMaxStaleMs: number;
  /** Verify results and row-cache outcomes; left out in unit tests. */
  readonly metrics?: Pick<TokenServiceMetrics, "verified" | "rowCache">;
}
