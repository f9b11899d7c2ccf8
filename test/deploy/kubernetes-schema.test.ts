import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import {
  CUSTOM_RESOURCES,
  isBuiltInKind,
  KUBERNETES_SCHEMA_VERSION,
  schemaErrors,
  typeKey,
  unknownFieldErrors,
} from "./kubernetes-schema.js";
import { containersOf } from "./pod-templates.js";
import { K8S_DIR, type KubeObject, OVERLAYS, objectId, renderOverlay } from "./render-overlay.js";

// RFC 1123, as the API server checks names; the OpenAPI schema does not carry these.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// IANA service name: a port name, at most 15 characters with a letter.
const PORT_NAME = /^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Name rules the API server enforces beyond the schema. */
function apiServerNameErrors(objects: readonly KubeObject[]): string[] {
  const errors: string[] = [];
  for (const object of objects) {
    const { name } = object.metadata;
    const labelKinds = new Set(["Service", "Namespace"]);
    if (labelKinds.has(object.kind) ? !DNS_LABEL.test(name) || name.length > 63 : !DNS_SUBDOMAIN.test(name)) {
      errors.push(`${objectId(object)}: invalid name`);
    }
    const labels = (object.metadata.labels ?? {}) as Record<string, string>;
    for (const [key, value] of Object.entries(labels)) {
      if (value.length > 63 || !LABEL_VALUE.test(value))
        errors.push(`${objectId(object)}: label ${key}=${value}`);
    }
  }
  for (const { container, id } of containersOf(objects)) {
    if (!DNS_LABEL.test(container.name)) errors.push(`${id}: invalid container name`);
    for (const port of container.ports ?? []) {
      if (port.name !== undefined && (port.name.length > 15 || !PORT_NAME.test(port.name))) {
        errors.push(`${id}: invalid port name ${port.name}`);
      }
    }
  }
  return errors;
}

describe.each(OVERLAYS)(`overlay %s against the Kubernetes ${KUBERNETES_SCHEMA_VERSION} API`, (overlay) => {
  const objects = renderOverlay(overlay);

  it("renders with kubectl kustomize into namespaced objects", () => {
    expect(objects.length).toBeGreaterThan(10);
    for (const object of objects) {
      expect(object.metadata.namespace, objectId(object)).toBe("latchkey");
    }
  });

  it("leaves the Namespace out, so `kubectl delete -k` cannot take volumes and Secrets with it", () => {
    expect(objects.filter((object) => object.kind === "Namespace").map(objectId)).toEqual([]);
  });

  it("uses only built-in kinds, or custom resources that are listed", async () => {
    const unknown: string[] = [];
    for (const object of objects) {
      if (!(await isBuiltInKind(object)) && !CUSTOM_RESOURCES.has(typeKey(object)))
        unknown.push(typeKey(object));
    }
    expect(unknown).toEqual([]);
  });

  it("matches the JSON schema of every object's kind", async () => {
    expect(await schemaErrors(objects)).toEqual([]);
  });

  it("has no field the API does not know", () => {
    expect(unknownFieldErrors(objects)).toEqual([]);
  });

  it("has names, labels and port names the API server accepts", () => {
    expect(apiServerNameErrors(objects)).toEqual([]);
  });

  it("has one object per kind and name", () => {
    const ids = objects.map(objectId);
    expect(ids.filter((id, index) => ids.indexOf(id) !== index)).toEqual([]);
  });
});

describe("deploy/k8s/namespace.yaml, applied once on its own", () => {
  const namespace = parseYaml(readFileSync(join(K8S_DIR, "namespace.yaml"), "utf8")) as KubeObject;

  it("is a valid Namespace, the one every overlay deploys into", async () => {
    expect(namespace.kind).toBe("Namespace");
    expect(await schemaErrors([namespace])).toEqual([]);
    expect(unknownFieldErrors([namespace])).toEqual([]);
    expect(apiServerNameErrors([namespace])).toEqual([]);
    for (const overlay of OVERLAYS) {
      const namespaces = new Set(renderOverlay(overlay).map((object) => object.metadata.namespace));
      expect([...namespaces], overlay).toEqual([namespace.metadata.name]);
    }
  });

  it("enforces the restricted Pod Security Standard", () => {
    expect(namespace.metadata.labels).toMatchObject({
      "pod-security.kubernetes.io/enforce": "restricted",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/audit": "restricted",
    });
  });
});

describe("the schema checks themselves", () => {
  // A check that passes everything proves nothing: feed each one a broken Deployment.
  const base = renderOverlay("dev");
  const deployment = base.find(
    (object) => object.kind === "Deployment" && object.metadata.name === "latchkey-token-service",
  );
  if (deployment === undefined) throw new Error("dev overlay has no token-service Deployment");

  function broken(mutate: (container: Record<string, unknown>) => void): KubeObject {
    const copy = structuredClone(deployment) as KubeObject & {
      spec: { template: { spec: { containers: Record<string, unknown>[] } } };
    };
    const container = copy.spec.template.spec.containers[0];
    if (container === undefined) throw new Error("no container");
    mutate(container);
    return copy;
  }

  it("reports a wrong type", async () => {
    const object = broken((container) => {
      container.ports = [{ name: "grpc", containerPort: "8082" }];
    });
    expect((await schemaErrors([object])).join("\n")).toMatch(/containerPort must be integer/);
  });

  it("reports a value outside an enum", async () => {
    const object = broken((container) => {
      container.imagePullPolicy = "Sometimes";
    });
    expect((await schemaErrors([object])).join("\n")).toMatch(/imagePullPolicy/);
  });

  it("reports a misspelt field", () => {
    const object = broken((container) => {
      container.readinesProbe = container.readinessProbe;
    });
    expect(unknownFieldErrors([object]).join("\n")).toMatch(/readinesProbe/);
  });

  it("reports a port name the API server refuses", () => {
    const object = broken((container) => {
      container.ports = [{ name: "native-grpc-fast-path", containerPort: 8082 }];
    });
    expect(apiServerNameErrors([object])).toEqual([
      "Deployment/latchkey-token-service › token-service: invalid port name native-grpc-fast-path",
    ]);
  });
});
