import { type Mutation, replaceOnce } from "./mutation.js";

/** Breakages of the token-service, sidecar, CloudNativePG and production manifests. */
export const mutations: Mutation[] = [
  {
    name: "token-service readiness probe names a gRPC service the server does not register",
    file: "deploy/k8s/base/token-service/deployment.yaml",
    apply: (text) =>
      replaceOnce(
        text,
        /(readinessProbe:\n\s+grpc:\n(\s+)port: \d+)/,
        "$1\n$2service: latchkey.v1.NoSuchService",
      ),
  },
  {
    name: "example sidecar readiness probe asks a path the sidecar does not serve",
    file: "deploy/k8s/components/example-app/deployment.yaml",
    apply: (text) => replaceOnce(text, "path: /readyz", "path: /ready"),
  },
  {
    name: "injected sidecar readiness probe asks a path the sidecar does not serve",
    file: "deploy/k8s/components/sidecar-injection/sidecar.yaml",
    apply: (text) => replaceOnce(text, "path: /readyz", "path: /health/ready"),
  },
  {
    name: "root key Secret made optional in production",
    file: "deploy/k8s/overlays/production/kustomization.yaml",
    apply: (text) =>
      replaceOnce(
        text,
        "      - op: remove\n        path: /spec/template/spec/containers/0/envFrom/2/secretRef/optional\n",
        "      - op: replace\n        path: /spec/template/spec/containers/0/envFrom/2/secretRef/optional\n        value: true\n",
      ),
  },
  {
    name: "nodeTaintsPolicy removed from the token-service's spread",
    file: "deploy/k8s/overlays/production/token-service-spread.yaml",
    apply: (text) => replaceOnce(text, /\n\s+nodeTaintsPolicy: Honor/g, ""),
  },
  {
    name: "example app's policy binds keys to no team (any team's key passes)",
    file: "deploy/k8s/components/example-app/policy.yaml",
    apply: (text) => replaceOnce(text, /\nteams: \[[^\]]*\]/, ""),
  },
  {
    name: "example app's policy binds keys to no environment (test keys pass)",
    file: "deploy/k8s/components/example-app/policy.yaml",
    apply: (text) => replaceOnce(text, /\nenvironments: \[live\]/, ""),
  },
  {
    name: "example app image floats on a major tag",
    file: "deploy/k8s/components/example-app/deployment.yaml",
    apply: (text) => replaceOnce(text, "traefik/whoami:v1.11.0", "traefik/whoami:v1"),
  },
  {
    name: "dev PostgreSQL image floats on a major with a distribution version",
    file: "deploy/k8s/overlays/dev/postgres/statefulset.yaml",
    apply: (text) => replaceOnce(text, "postgres:18.6-trixie", "postgres:18-alpine3.22"),
  },
  {
    name: "CloudNativePG imageName floats on a major",
    file: "deploy/k8s/components/cloudnative-pg/cluster.yaml",
    apply: (text) => replaceOnce(text, "postgresql:18.6-standard-trixie", "postgresql:18-standard-trixie"),
  },
  {
    name: "CloudNativePG instances no longer reach each other's instance manager (8000)",
    file: "deploy/k8s/components/cloudnative-pg/network-policy.yaml",
    apply: (text) =>
      replaceOnce(
        text,
        "              cnpg.io/cluster: latchkey-postgres\n      ports:\n        - protocol: TCP\n          port: 5432\n        - protocol: TCP\n          port: 8000\n",
        "              cnpg.io/cluster: latchkey-postgres\n      ports:\n        - protocol: TCP\n          port: 5432\n",
      ),
  },
  {
    name: "sidecar drain as long as before (20 s), past the grace period once it follows the app",
    file: "deploy/k8s/components/example-app/sidecar.env",
    apply: (text) =>
      replaceOnce(text, "LATCHKEY_SHUTDOWN_TIMEOUT_MS=5000", "LATCHKEY_SHUTDOWN_TIMEOUT_MS=20000"),
  },
  {
    name: "a Namespace rendered by the overlays again (delete -k would take it)",
    file: "deploy/k8s/base/network-policies/default-deny.yaml",
    apply: (text) => `${text}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: latchkey\n`,
  },
];
