// components/tls and components/monitoring as rendered: the settings the
// token-service gets name files that the mounts really provide, from the
// Secret cert-manager writes or the database's CA; the certificate names the
// Service verifiers dial; the probes stay on the cleartext health port; the
// PodMonitor scrapes the port LATCHKEY_METRICS_LISTEN opens.
import { posix } from "node:path";
import { describe, expect, it } from "vitest";
import { loadTokenServiceConfig, type TokenServiceConfig } from "../../services/token-service/src/config.js";
import { containerEnvironment, EXTERNAL_CONFIG_MAPS } from "./container-environment.js";
import { schemaErrors, unknownFieldErrors } from "./kubernetes-schema.js";
import {
  type Container,
  findContainer,
  findObject,
  findTemplate,
  type PodTemplate,
} from "./pod-templates.js";
import { type KubeObject, type OVERLAYS, renderKustomization, renderOverlay } from "./render-overlay.js";

interface Volume {
  readonly name: string;
  readonly configMap?: { name: string; items?: { key: string; path: string }[] };
  readonly secret?: { secretName: string; defaultMode?: number; items?: { key: string; path: string }[] };
}

/** The volume, and the key inside its ConfigMap or Secret, that provide `file` in `container`. */
function sourceOf(template: PodTemplate, container: Container, file: string) {
  const mount = container.volumeMounts?.find((candidate) => file.startsWith(`${candidate.mountPath}/`));
  if (mount === undefined) throw new Error(`${container.name}: nothing is mounted at ${file}`);
  const volume = (template.spec.volumes as readonly Volume[] | undefined)?.find((v) => v.name === mount.name);
  if (volume === undefined) throw new Error(`${container.name}: no volume ${mount.name}`);
  const path = posix.relative(mount.mountPath, file);
  const items = volume.secret?.items ?? volume.configMap?.items;
  const key = items === undefined ? path : items.find((item) => item.path === path)?.key;
  return { volume, key };
}

function configOf(objects: readonly KubeObject[], overlay: (typeof OVERLAYS)[number], container: Container) {
  return loadTokenServiceConfig(containerEnvironment(container, objects, overlay));
}

describe.each(["production", "production-cnpg"] as const)(
  "overlay %s: TLS for Verify and PostgreSQL",
  (overlay) => {
    const objects = renderOverlay(overlay);
    const template = findTemplate(objects, "Deployment", "latchkey-token-service");
    const server = findContainer(template, "token-service");
    const config: TokenServiceConfig = configOf(objects, overlay, server);

    it("serves the RPC ports with the certificate cert-manager issues for the token-service's Service", () => {
      const cert = sourceOf(template, server, config.tlsCert ?? "");
      const key = sourceOf(template, server, config.tlsKey ?? "");
      expect([cert.key, key.key]).toEqual(["tls.crt", "tls.key"]);
      expect(key.volume.secret?.secretName).toBe(cert.volume.secret?.secretName);
      const certificate = objects.find(
        (object) =>
          object.kind === "Certificate" &&
          (object.spec as { secretName: string }).secretName === cert.volume.secret?.secretName,
      );
      expect(certificate).toBeDefined();
      const spec = certificate?.spec as { dnsNames: string[]; issuerRef: { name: string; kind: string } };
      // The names verifiers dial: the sidecar's https:// URL in another namespace, and the short one.
      expect(spec.dnsNames).toEqual(
        expect.arrayContaining([
          "latchkey-token-service",
          "latchkey-token-service.latchkey.svc.cluster.local",
        ]),
      );
      findObject(objects, "Service", "latchkey-token-service");
      // The issuer chain is complete: Issuer → CA Certificate → self-signed Issuer (the placeholder).
      const issuer = findObject(objects, spec.issuerRef.kind, spec.issuerRef.name).spec as {
        ca?: { secretName: string };
      };
      const ca = objects.find(
        (object) =>
          object.kind === "Certificate" &&
          (object.spec as { secretName: string }).secretName === issuer.ca?.secretName,
      );
      expect((ca?.spec as { isCA?: boolean } | undefined)?.isCA).toBe(true);
      // The key is mode 0440 and the server's group reads it.
      expect(cert.volume.secret?.defaultMode).toBe(0o440);
      const pod = template.spec.securityContext as { fsGroup?: number; runAsGroup?: number };
      expect(pod.fsGroup).toBe(pod.runAsGroup);
    });

    it("keeps the probes on the cleartext health port, away from the TLS listeners", () => {
      expect(config.healthListen?.port).toBeDefined();
      expect(config.healthListen?.port).not.toBe(config.grpcListen.port);
      expect(config.healthListen?.port).not.toBe(config.listen.port);
      for (const probe of [server.startupProbe, server.livenessProbe, server.readinessProbe]) {
        expect((probe as { grpc?: { port: number } }).grpc?.port).toBe(config.healthListen?.port);
      }
    });

    it("checks PostgreSQL's certificate against the database's CA, in the server and the migrate step", () => {
      for (const container of [server, findContainer(template, "migrate")]) {
        const { dbCaFile } = configOf(objects, overlay, container);
        expect(dbCaFile, container.name).toBeDefined();
        const { volume, key } = sourceOf(template, container, dbCaFile ?? "");
        expect(key).toBe("ca.crt");
        if (overlay === "production-cnpg") {
          // The operator's CA, which signed the certificate of latchkey-postgres-rw.
          expect(volume.secret?.secretName).toBe("latchkey-postgres-ca");
          expect(volume.configMap).toBeUndefined();
        } else {
          expect(EXTERNAL_CONFIG_MAPS[overlay]).toContain(volume.configMap?.name);
        }
      }
    });
  },
);

describe("overlay dev", () => {
  it("stays cleartext (no cert-manager in a kind cluster), with the same probe port", () => {
    const objects = renderOverlay("dev");
    const server = findContainer(
      findTemplate(objects, "Deployment", "latchkey-token-service"),
      "token-service",
    );
    const config = configOf(objects, "dev", server);
    expect(config.tlsCert).toBeUndefined();
    expect(config.dbCaFile).toBeUndefined();
    expect((server.readinessProbe as { grpc?: { port: number } }).grpc?.port).toBe(config.healthListen?.port);
  });
});

describe("components/monitoring on the production overlay", () => {
  const objects = renderKustomization("../../test/deploy/fixtures/production-monitoring");
  const template = findTemplate(objects, "Deployment", "latchkey-token-service");
  const server = findContainer(template, "token-service");

  it("adds only objects the Kubernetes schema accepts (the PodMonitors are listed custom resources)", async () => {
    expect(await schemaErrors(objects)).toEqual([]);
    expect(unknownFieldErrors(objects)).toEqual([]);
  });

  it("scrapes the token-service on the port LATCHKEY_METRICS_LISTEN opens", () => {
    const config = configOf(objects, "production", server);
    const monitor = findObject(objects, "PodMonitor", "latchkey-token-service").spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string; path: string }[];
    };
    expect(template.labels).toMatchObject(monitor.selector.matchLabels);
    const endpoint = monitor.podMetricsEndpoints[0];
    expect(endpoint?.path).toBe("/metrics");
    const port = server.ports?.find((candidate) => candidate.name === endpoint?.port);
    expect(port?.containerPort).toBe(config.metricsListen?.port);
  });

  it("scrapes sidecars on their admin port, and lets Prometheus through the default deny", () => {
    const sidecars = findObject(objects, "PodMonitor", "latchkey-sidecars").spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string }[];
    };
    expect(sidecars.selector.matchLabels).toEqual({ "latchkey.dev/verifier": "true" });
    expect(sidecars.podMetricsEndpoints[0]?.port).toBe("admin");
    const policy = findObject(objects, "NetworkPolicy", "latchkey-token-service-metrics").spec as {
      ingress: { ports: { port: number }[] }[];
    };
    expect(policy.ingress.flatMap((rule) => rule.ports.map((port) => port.port))).toEqual([9090]);
  });
});
