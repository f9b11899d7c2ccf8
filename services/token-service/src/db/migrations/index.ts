import type { Migration } from "kysely/migration";
import * as initial from "./2026-11-26T0000_initial.js";
import * as outboxRandomStart from "./2026-11-27T0000_outbox_random_start.js";
import * as expiryAnnounced from "./2026-11-27T0100_expiry_announced.js";
import * as disabledBy from "./2026-11-28T0000_disabled_by.js";
import * as usage from "./2026-12-02T0000_usage.js";
import * as rateLimits from "./2026-12-02T0100_rate_limits.js";
import * as keyFormats from "./2026-12-02T0200_key_formats.js";
import * as importKeys from "./2026-12-02T0300_import.js";
import * as ownerEnvironment from "./2026-12-02T0400_owner_environment.js";
import * as keychains from "./2026-12-03T0000_keychains.js";
import * as auditRetention from "./2026-12-03T0100_audit_retention.js";
import * as outboxCurrency from "./2026-12-03T0200_outbox_currency.js";
import * as outboxTraceParent from "./2026-12-03T0300_outbox_trace_parent.js";

/**
 * Every migration, by name. Names are timestamps so they sort in order; kept
 * in code rather than read from a folder so the service runs the same under
 * tsx, in a container, or bundled.
 */
export const migrations: Record<string, Migration> = {
  "2026-11-26T0000_initial": initial,
  "2026-11-27T0000_outbox_random_start": outboxRandomStart,
  "2026-11-27T0100_expiry_announced": expiryAnnounced,
  "2026-11-28T0000_disabled_by": disabledBy,
  "2026-12-02T0000_usage": usage,
  "2026-12-02T0100_rate_limits": rateLimits,
  "2026-12-02T0200_key_formats": keyFormats,
  "2026-12-02T0300_import": importKeys,
  "2026-12-02T0400_owner_environment": ownerEnvironment,
  "2026-12-03T0000_keychains": keychains,
  "2026-12-03T0100_audit_retention": auditRetention,
  "2026-12-03T0200_outbox_currency": outboxCurrency,
  "2026-12-03T0300_outbox_trace_parent": outboxTraceParent,
};
