/**
 * The Latchkey token-service, for embedding (`npm start` runs it in one
 * process with a sidecar) and for tests. The binary is `src/main.ts`.
 */
export {
  loadTokenServiceConfig,
  TOKEN_SERVICE_ENV,
  type TokenServiceConfig,
  tokenServiceConfigSchema,
} from "./config.js";
export { type DatabaseHandle, openDatabase } from "./db/database.js";
export { migrateDown, migrateToLatest } from "./db/migrate.js";
export { type StartOptions, startTokenService, type TokenServiceHandle } from "./token-service.js";
