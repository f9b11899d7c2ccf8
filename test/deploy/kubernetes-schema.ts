import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type KubeObject, objectId, REPO_ROOT } from "./render-overlay.js";

/**
 * Kubernetes API version whose OpenAPI schema the manifests are checked against: the
 * one `kubernetes-models` (a dev dependency) is generated from. Its validators are
 * ajv-compiled JSON schemas of every built-in kind, so no schema is fetched at test time.
 */
export const KUBERNETES_SCHEMA_VERSION = "1.36";

/**
 * Custom resources the manifests use, which no built-in schema covers. Each is checked
 * by a test of its own instead.
 */
export const CUSTOM_RESOURCES: ReadonlySet<string> = new Set([
  "postgresql.cnpg.io/v1/Cluster",
  "cert-manager.io/v1/Certificate",
  "cert-manager.io/v1/Issuer",
  "monitoring.coreos.com/v1/PodMonitor",
  "monitoring.coreos.com/v1/PrometheusRule",
  "postgresql.cnpg.io/v1/ScheduledBackup",
  "barmancloud.cnpg.io/v1/ObjectStore",
]);

/** "apps/v1/Deployment" */
export function typeKey(object: KubeObject): string {
  return `${object.apiVersion}/${object.kind}`;
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

const models = new Map<string, ModelClass | undefined>();

/**
 * The kubernetes-models class of a built-in kind (`kubernetes-models/apps/v1/Deployment`
 * exports `Deployment`), or undefined when the package has none: a custom resource, a
 * removed API version or a typo.
 */
async function modelOf(object: KubeObject): Promise<ModelClass | undefined> {
  const key = typeKey(object);
  if (!models.has(key)) {
    let model: ModelClass | undefined;
    try {
      const module = (await import(`kubernetes-models/${key}`)) as Record<string, unknown>;
      model = module[object.kind] as ModelClass | undefined;
    } catch {
      model = undefined;
    }
    models.set(key, model);
  }
  return models.get(key);
}

/** Whether `kubernetes-models` has a schema for the object's apiVersion and kind. */
export async function isBuiltInKind(object: KubeObject): Promise<boolean> {
  return (await modelOf(object)) !== undefined;
}

/**
 * kustomize wraps long base64 values (Secret `data`) over several lines. The API server
 * decodes them with Go's base64 decoder, which skips line breaks; the schema's `byte`
 * format does not, so unwrap them first.
 */
function unwrapBase64(object: KubeObject): KubeObject {
  const field = object.kind === "Secret" ? "data" : object.kind === "ConfigMap" ? "binaryData" : undefined;
  const values = field === undefined ? undefined : (object[field] as Record<string, string> | undefined);
  if (field === undefined || values === undefined) return object;
  const unwrapped = Object.entries(values).map(([key, value]) => [key, value.replace(/[\r\n]/g, "")]);
  return { ...object, [field]: Object.fromEntries(unwrapped) };
}

/**
 * Validates each object against the JSON schema of its kind: types, enums, required
 * fields, formats. Returns one message per invalid object; unknown kinds are the
 * caller's concern ({@link isBuiltInKind}).
 */
export async function schemaErrors(objects: readonly KubeObject[]): Promise<string[]> {
  const errors: string[] = [];
  for (const object of objects) {
    const Model = await modelOf(object);
    if (Model === undefined) continue;
    try {
      new Model(unwrapBase64(object)).validate();
    } catch (error) {
      errors.push(`${objectId(object)}: ${(error as Error).message}`);
    }
  }
  return errors;
}

/**
 * Finds fields the Kubernetes API does not know (`readinesProbe`, a `port` under
 * `grpc` spelled `ports`). The JSON schemas allow extra properties, as the API server
 * does, so this asks the TypeScript compiler instead: each object becomes an object
 * literal that `satisfies` the kubernetes-models interface of its kind, and an excess
 * property anywhere in it is a compile error. Same generator, same OpenAPI document.
 */
export function unknownFieldErrors(objects: readonly KubeObject[]): string[] {
  const builtIn = objects.filter((object) => !CUSTOM_RESOURCES.has(typeKey(object)));
  const imports = new Map<string, string>();
  const lines: string[] = [];
  const lineOwner = new Map<number, KubeObject>();
  for (const object of builtIn) {
    const key = typeKey(object);
    let alias = imports.get(key);
    if (alias === undefined) {
      alias = `T${imports.size}`;
      imports.set(key, alias);
    }
    lines.push(`export const o${lines.length} = ${JSON.stringify(object)} satisfies ${alias};`);
  }
  const header = [...imports].map(
    ([key, alias]) =>
      `import type { I${key.split("/").at(-1)} as ${alias} } from "kubernetes-models/${key}";`,
  );
  builtIn.forEach((object, index) => {
    lineOwner.set(header.length + index + 1, object);
  });

  // Inside the repository, so the compiler finds node_modules; .tmp/ is git-ignored.
  const dir = join(REPO_ROOT, ".tmp", `deploy-typecheck-${randomUUID()}`);
  mkdirSync(dir, { recursive: true });
  try {
    writeFileSync(join(dir, "manifests.ts"), `${[...header, ...lines].join("\n")}\n`);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          skipLibCheck: true,
          types: [],
        },
        files: ["manifests.ts"],
      }),
    );
    const tsc = join(REPO_ROOT, "node_modules", ".bin", "tsc");
    const result = spawnSync(tsc, ["-p", join(dir, "tsconfig.json"), "--pretty", "false"], {
      encoding: "utf8",
    });
    if (result.error !== undefined) throw result.error;
    if (result.status === 0) return [];
    const errors: string[] = [];
    for (const line of `${result.stdout}${result.stderr}`.split("\n")) {
      const match = /^manifests\.ts\((\d+),\d+\): error (TS\d+: .*)$/.exec(line.trim());
      if (match === null) {
        if (line.includes("error")) errors.push(line.trim());
        continue;
      }
      const owner = lineOwner.get(Number(match[1]));
      errors.push(`${owner === undefined ? "?" : objectId(owner)}: ${match[2]}`);
    }
    return errors.length > 0 ? errors : [`tsc failed (${result.status}): ${result.stdout}${result.stderr}`];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
