/** Layered, validated configuration for Latchkey services. */
export { ConfigError, type EnvBinding, type LoadConfigOptions, loadConfig } from "./load-config.js";
export { readPemFile } from "./read-pem-file.js";
export { booleanSetting, integerSetting, type ListenAddress, listenAddress } from "./schema-helpers.js";
