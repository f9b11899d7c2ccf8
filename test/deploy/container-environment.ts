import type { Container } from "./pod-templates.js";
import type { OverlayName } from "./render-overlay.js";
import { type KubeObject, objectId } from "./render-overlay.js";

/** A root key for the checks (32 to 512 characters, as the config schema demands). */
const ROOT_KEY_STAND_IN = "stand-in-root-key-0123456789abcdefghijklmnop";

/**
 * The NATS credentials and certificate every overlay refers to (deploy/README.md, "NATS:
 * credentials and TLS"). Stand-ins here; the NATS tests make real ones.
 */
export const NATS_SECRETS: Readonly<Record<string, Record<string, string>>> = {
  "latchkey-nats-users": { "token-service.pub": "U-stand-in", "verifier.pub": "U-stand-in" },
  "latchkey-nats-tls": { "tls.crt": "stand-in", "tls.key": "stand-in", "ca.crt": "stand-in" },
  "latchkey-nats-token-service": { "nkey.seed": "stand-in" },
  "latchkey-nats-verifier": { "nkey.seed": "stand-in" },
};

/**
 * Secrets an overlay refers to but does not render, because they hold real credentials
 * or another controller writes them, with stand-in values for the checks. deploy/README.md
 * tells the user to create the first ones.
 */
export const EXTERNAL_SECRETS: Readonly<
  Record<OverlayName, Readonly<Record<string, Record<string, string>>>>
> = {
  dev: { ...NATS_SECRETS },
  production: {
    ...NATS_SECRETS,
    "latchkey-token-service": { DATABASE_URL: "postgres://latchkey:stand-in@db.internal:5432/latchkey" },
    "latchkey-root-key": { LATCHKEY_ROOT_KEY: ROOT_KEY_STAND_IN },
  },
  "production-cnpg": {
    ...NATS_SECRETS,
    "latchkey-token-service": {},
    "latchkey-root-key": { LATCHKEY_ROOT_KEY: ROOT_KEY_STAND_IN },
    // Written by the CloudNativePG operator for the Cluster latchkey-postgres.
    "latchkey-postgres-app": {
      uri: "postgresql://latchkey:stand-in@latchkey-postgres-rw.latchkey:5432/latchkey",
    },
  },
};

/**
 * ConfigMaps an overlay mounts but does not render, because they hold the user's own
 * material; deploy/README.md tells the user to create them.
 */
export const EXTERNAL_CONFIG_MAPS: Readonly<Record<OverlayName, readonly string[]>> = {
  dev: [],
  // components/tls: the CA bundle of the user's PostgreSQL (key ca.crt).
  production: ["latchkey-db-ca"],
  // The operator's CA replaces it (components/cloudnative-pg).
  "production-cnpg": [],
};

/** The name, and optional flag, of every ConfigMap and Secret a container or its pod refers to. */
export interface Reference {
  readonly kind: "ConfigMap" | "Secret";
  readonly name: string;
  readonly optional: boolean;
}

/** The ConfigMaps and Secrets `container` reads through envFrom and env. */
export function environmentReferences(container: Container): Reference[] {
  const references: Reference[] = [];
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef !== undefined) {
      const { name, optional = false } = source.configMapRef;
      references.push({ kind: "ConfigMap", name, optional });
    }
    if (source.secretRef !== undefined) {
      const { name, optional = false } = source.secretRef;
      references.push({ kind: "Secret", name, optional });
    }
  }
  for (const variable of container.env ?? []) {
    const configMap = variable.valueFrom?.configMapKeyRef;
    if (configMap !== undefined) {
      references.push({ kind: "ConfigMap", name: configMap.name, optional: configMap.optional ?? false });
    }
    const secret = variable.valueFrom?.secretKeyRef;
    if (secret !== undefined) {
      references.push({ kind: "Secret", name: secret.name, optional: secret.optional ?? false });
    }
  }
  return references;
}

function dataOf(
  objects: readonly KubeObject[],
  overlay: OverlayName,
  kind: "ConfigMap" | "Secret",
  name: string,
): Record<string, string> | undefined {
  const object = objects.find((candidate) => candidate.kind === kind && candidate.metadata.name === name);
  if (object === undefined) return kind === "Secret" ? EXTERNAL_SECRETS[overlay][name] : undefined;
  const data = (object.data ?? {}) as Record<string, string>;
  if (kind === "ConfigMap") return { ...data };
  const decoded = Object.entries(data).map(([key, value]) => [
    key,
    Buffer.from(value, "base64").toString("utf8"),
  ]);
  return Object.fromEntries(decoded);
}

/**
 * The environment a container starts with, as the kubelet builds it: envFrom sources
 * in order, then env entries (which win). Field references become a stand-in string.
 *
 * @throws naming a required ConfigMap or Secret that is neither rendered nor external.
 */
export function containerEnvironment(
  container: Container,
  objects: readonly KubeObject[],
  overlay: OverlayName,
): Record<string, string> {
  const environment: Record<string, string> = {};
  const missing = (kind: string, name: string) =>
    new Error(`${container.name}: ${kind}/${name} is neither rendered nor a documented external object`);
  for (const source of container.envFrom ?? []) {
    const ref = source.configMapRef ?? source.secretRef;
    if (ref === undefined) continue;
    const kind = source.configMapRef !== undefined ? "ConfigMap" : "Secret";
    const data = dataOf(objects, overlay, kind, ref.name);
    if (data === undefined && ref.optional !== true) throw missing(kind, ref.name);
    Object.assign(environment, data);
  }
  for (const variable of container.env ?? []) {
    const { valueFrom } = variable;
    const keyRef = valueFrom?.secretKeyRef ?? valueFrom?.configMapKeyRef;
    if (keyRef === undefined) {
      environment[variable.name] = (variable as { value?: string }).value ?? "stand-in";
      continue;
    }
    const kind = valueFrom?.secretKeyRef !== undefined ? "Secret" : "ConfigMap";
    const value = dataOf(objects, overlay, kind, keyRef.name)?.[keyRef.key];
    if (value === undefined && keyRef.optional !== true)
      throw missing(`${kind} key ${keyRef.key} of`, keyRef.name);
    if (value !== undefined) environment[variable.name] = value;
  }
  return environment;
}

/** Whether a ConfigMap or Secret of that name is among `objects` (messages name the object). */
export function isRendered(objects: readonly KubeObject[], reference: Reference): boolean {
  return objects.some((object) => object.kind === reference.kind && object.metadata.name === reference.name);
}

/** For messages: "ConfigMap/latchkey-token-service-abc". */
export function referenceId(reference: Reference): string {
  return objectId({ apiVersion: "v1", kind: reference.kind, metadata: { name: reference.name } });
}
