import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { parseAllDocuments } from "yaml";

/** The repository root (this file is test/deploy/render-overlay.ts). */
export const REPO_ROOT = resolve(import.meta.dirname, "../..");

/** deploy/k8s, where the kustomize base, overlays and components live. */
export const K8S_DIR = join(REPO_ROOT, "deploy", "k8s");

/** Every overlay a user can apply; each one is rendered and checked. */
export const OVERLAYS = ["dev", "production", "production-cnpg"] as const;

/** One of {@link OVERLAYS}. */
export type OverlayName = (typeof OVERLAYS)[number];

/** A rendered Kubernetes object; the checks read it as plain JSON. */
export interface KubeObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly [key: string]: unknown };
  readonly [key: string]: unknown;
}

/** "Deployment/latchkey-token-service", for messages. */
export function objectId(object: KubeObject): string {
  return `${object.kind}/${object.metadata.name}`;
}

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * The command that renders a kustomization: `$KUBECTL kustomize`, `kubectl kustomize`
 * or a standalone `kustomize build`. None is a failure, not a skip: CI machines of this
 * project's kind ship kubectl, and a renderer that silently went missing would let
 * broken manifests through.
 */
function kustomizeCommand(): { command: string; args: string[] } {
  const kubectl = process.env.KUBECTL ?? findOnPath("kubectl");
  if (kubectl !== undefined) return { command: kubectl, args: ["kustomize"] };
  const kustomize = findOnPath("kustomize");
  if (kustomize !== undefined) return { command: kustomize, args: ["build"] };
  throw new Error(
    "neither kubectl nor kustomize is on PATH (or set KUBECTL): the deploy tests render the " +
      "overlays with `kubectl kustomize` (kustomize v5+; Debian's kubernetes-client 1.20 is too old)",
  );
}

const cache = new Map<string, KubeObject[]>();

/**
 * Renders a kustomization directory (relative to deploy/k8s) the way
 * `kubectl apply -k` would, and returns its objects in order.
 */
export function renderKustomization(relativeDir: string): KubeObject[] {
  return renderDirectory(join(K8S_DIR, relativeDir));
}

/** Renders the kustomization in `dir` (an absolute path: a fixture, a temporary overlay). */
export function renderDirectory(dir: string): KubeObject[] {
  const cached = cache.get(dir);
  if (cached !== undefined) return cached;
  const { command, args } = kustomizeCommand();
  const result = spawnSync(command, [...args, dir], {
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error !== undefined) throw result.error;
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(" ")} ${dir} failed (${result.status}):\n${result.stderr}`);
  }
  const objects: KubeObject[] = [];
  for (const document of parseAllDocuments(result.stdout)) {
    if (document.errors.length > 0) throw new Error(`${dir}: ${document.errors[0]?.message}`);
    const value: unknown = document.toJSON();
    if (value === null || value === undefined) continue;
    objects.push(value as KubeObject);
  }
  cache.set(dir, objects);
  return objects;
}

/** Renders `deploy/k8s/overlays/<name>`. */
export function renderOverlay(name: OverlayName): KubeObject[] {
  return renderKustomization(join("overlays", name));
}
