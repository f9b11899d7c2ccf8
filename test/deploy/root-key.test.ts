import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { environmentReferences } from "./container-environment.js";
import { findContainer, findTemplate, type PodTemplate } from "./pod-templates.js";
import {
  K8S_DIR,
  type KubeObject,
  OVERLAYS,
  REPO_ROOT,
  renderDirectory,
  renderOverlay,
} from "./render-overlay.js";

/** The root key reference of the token-service server container. */
function rootKeyReference(objects: readonly KubeObject[]) {
  const container = findContainer(
    findTemplate(objects, "Deployment", "latchkey-token-service"),
    "token-service",
  );
  return environmentReferences(container).find(
    (reference) => reference.kind === "Secret" && reference.name.startsWith("latchkey-root-key"),
  );
}

describe.each(OVERLAYS)("overlay %s: the root key", (overlay) => {
  const objects = renderOverlay(overlay);

  it(
    overlay === "dev"
      ? "may be left out in dev, where the first start generates one"
      : "is a required Secret, so no pod starts (and generates a key of its own) without it",
    () => {
      const reference = rootKeyReference(objects);
      expect(reference?.name).toBe("latchkey-root-key");
      expect(reference?.optional).toBe(overlay === "dev");
    },
  );
});

describe("your production overlay, with the root key from kustomize's secretGenerator", () => {
  // The workflow deploy/README.md gives: your overlay on top of overlays/production,
  // generating the Secret, whose name then carries a hash of its content.
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function renderWithRootKey(rootKey: string): KubeObject[] {
    const dir = join(REPO_ROOT, ".tmp", `root-key-overlay-${process.pid}-${dirs.length}`);
    dirs.push(dir);
    mkdirSync(dir, { recursive: true });
    const production = relative(dir, join(K8S_DIR, "overlays", "production"));
    writeFileSync(
      join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "namespace: latchkey",
        "resources:",
        `  - ${production}`,
        "secretGenerator:",
        "  - name: latchkey-root-key",
        "    literals:",
        `      - LATCHKEY_ROOT_KEY=${rootKey}`,
        "",
      ].join("\n"),
    );
    return renderDirectory(dir);
  }

  const template = (objects: readonly KubeObject[]): PodTemplate =>
    findTemplate(objects, "Deployment", "latchkey-token-service");

  it("rolls the token-service's pods when the key changes, and only then", () => {
    const first = renderWithRootKey("a".repeat(64));
    const same = renderWithRootKey("a".repeat(64));
    const rotated = renderWithRootKey("b".repeat(64));
    const firstName = rootKeyReference(first)?.name ?? "";
    expect(firstName).toMatch(/^latchkey-root-key-[a-z0-9]{10}$/);
    expect(rootKeyReference(first)?.optional).toBe(false);
    expect(first.some((object) => object.kind === "Secret" && object.metadata.name === firstName)).toBe(true);
    // A changed pod template is what makes the Deployment roll.
    expect(JSON.stringify(template(same).spec)).toBe(JSON.stringify(template(first).spec));
    expect(rootKeyReference(rotated)?.name).not.toBe(firstName);
    expect(JSON.stringify(template(rotated).spec)).not.toBe(JSON.stringify(template(first).spec));
  });
});
