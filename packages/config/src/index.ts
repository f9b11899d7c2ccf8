/** Layered, validated configuration for Latchkey services. */
export { ConfigError, type LoadConfigOptions, loadConfig } from "./load-config.js";
export {
  checkNatsClientFiles,
  checkNatsClientSettings,
  NATS_CLIENT_ENV,
  type NatsClientFiles,
  type NatsClientSettings,
  natsClientSettings,
} from "./nats-client-settings.js";
export { readPemFile } from "./read-pem-file.js";
export {
  booleanSetting,
  integerSetting,
  type ListenAddress,
  listenAddress,
  structuredSetting,
} from "./schema-helpers.js";
export {
  loadTlsKeyPair,
  readTlsKeyPair,
  type TlsKeyPair,
  type TlsKeyPairOutcome,
} from "./tls-key-pair.js";
