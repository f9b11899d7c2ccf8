import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Container, PodTemplate } from "./pod-templates.js";
import { type KubeObject, objectId } from "./render-overlay.js";

/** Contents of Secrets the overlay refers to but does not render: name → key → text. */
export type SecretContents = Readonly<Record<string, Readonly<Record<string, string>>>>;

interface KeyToPath {
  readonly key: string;
  readonly path: string;
}

interface VolumeSource {
  readonly name: string;
  readonly configMap?: { readonly name: string; readonly items?: readonly KeyToPath[] };
  readonly secret?: { readonly secretName: string; readonly items?: readonly KeyToPath[] };
  readonly projected?: {
    readonly sources: readonly {
      readonly secret?: { readonly name: string; readonly items?: readonly KeyToPath[] };
      readonly configMap?: { readonly name: string; readonly items?: readonly KeyToPath[] };
    }[];
  };
  readonly emptyDir?: unknown;
}

/** A container's mounts, laid out in a local folder, and the mapping from its paths to local ones. */
export interface PodFiles {
  /** The local path of a path inside the container; the path itself when no mount covers it. */
  localPath(containerPath: string): string;
  /** Replaces every mounted path in `text` (a config file, a command line) by its local path. */
  localize(text: string): string;
}

function configMapData(objects: readonly KubeObject[], name: string): Record<string, string> {
  const found = objects.find((object) => object.kind === "ConfigMap" && object.metadata.name === name);
  if (found === undefined) throw new Error(`ConfigMap/${name} is not rendered`);
  return { ...(found.data as Record<string, string>) };
}

function secretData(objects: readonly KubeObject[], secrets: SecretContents, name: string) {
  const rendered = objects.find((object) => object.kind === "Secret" && object.metadata.name === name);
  if (rendered !== undefined) {
    const entries = Object.entries((rendered.data ?? {}) as Record<string, string>);
    return Object.fromEntries(entries.map(([key, value]) => [key, Buffer.from(value, "base64").toString()]));
  }
  const given = secrets[name];
  if (given === undefined) throw new Error(`Secret/${name} is neither rendered nor given to the test`);
  return { ...given };
}

function pick(data: Record<string, string>, items: readonly KeyToPath[] | undefined, what: string) {
  if (items === undefined) return data;
  const picked: Record<string, string> = {};
  for (const { key, path } of items) {
    const value = data[key];
    if (value === undefined) throw new Error(`${what} has no key ${key}`);
    picked[path] = value;
  }
  return picked;
}

/**
 * Lays out what the kubelet would mount into `container` (ConfigMaps, Secrets,
 * projected volumes, emptyDirs and volume claims as empty folders) under `dir`, so a
 * process started on this machine finds its files where the manifest puts them,
 * rewritten to local paths. A file the manifest does not mount stays at its
 * container path, which does not exist here: a missing mount fails the test.
 */
export async function materializeMounts(
  template: PodTemplate,
  container: Container,
  objects: readonly KubeObject[],
  secrets: SecretContents,
  dir: string,
): Promise<PodFiles> {
  const volumes = (template.spec.volumes ?? []) as readonly VolumeSource[];
  const claims = (
    (template.owner.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] })
      .volumeClaimTemplates ?? []
  ).map((claim) => claim.metadata.name);
  const mounts: { mountPath: string; local: string }[] = [];
  for (const mount of container.volumeMounts ?? []) {
    const local = join(dir, "volumes", mount.name);
    await mkdir(local, { recursive: true });
    mounts.push({ mountPath: mount.mountPath.replace(/\/$/, ""), local });
    const volume = volumes.find((candidate) => candidate.name === mount.name);
    if (volume === undefined) {
      if (claims.includes(mount.name)) continue;
      throw new Error(`${objectId(template.owner)}: no volume ${mount.name}`);
    }
    let files: Record<string, string> = {};
    if (volume.configMap !== undefined) {
      const { name, items } = volume.configMap;
      files = pick(configMapData(objects, name), items, `ConfigMap/${name}`);
    } else if (volume.secret !== undefined) {
      const { secretName, items } = volume.secret;
      files = pick(secretData(objects, secrets, secretName), items, `Secret/${secretName}`);
    } else if (volume.projected !== undefined) {
      for (const source of volume.projected.sources) {
        if (source.secret !== undefined) {
          const { name, items } = source.secret;
          Object.assign(files, pick(secretData(objects, secrets, name), items, `Secret/${name}`));
        } else if (source.configMap !== undefined) {
          const { name, items } = source.configMap;
          Object.assign(files, pick(configMapData(objects, name), items, `ConfigMap/${name}`));
        }
      }
    }
    for (const [path, text] of Object.entries(files)) await writeFile(join(local, path), text);
  }
  // Longest mount path first, so /etc/nats-tls is not read as /etc/nats + "-tls".
  mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
  const localPath = (containerPath: string) => {
    for (const { mountPath, local } of mounts) {
      if (containerPath === mountPath) return local;
      if (containerPath.startsWith(`${mountPath}/`)) return local + containerPath.slice(mountPath.length);
    }
    return containerPath;
  };
  return {
    localPath,
    localize: (text) => text.replace(/\/[A-Za-z0-9._/-]+/g, (path) => localPath(path)),
  };
}
