// The rendered NATS config, checked by nats-server itself (`-t` parses and validates it
// without starting) with only the environment the pod gives the container: a config that
// does not parse, or that refers to a variable the pod does not set ($POD_NAME), fails
// here rather than in a crash-looping pod. (A minimal check; the NATS cluster tests that
// start the rendered servers belong with the NATS work.)
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { findNatsServer } from "../harness/index.js";
import { findContainer, findObject, findTemplate } from "./pod-templates.js";
import { OVERLAYS, renderOverlay } from "./render-overlay.js";

const dir = mkdtempSync(join(tmpdir(), "latchkey-nats-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each(OVERLAYS)("overlay %s: the NATS config", (overlay) => {
  const objects = renderOverlay(overlay);

  it("is valid to nats-server, with the variables the pod sets", () => {
    const nats = findTemplate(objects, "StatefulSet", "latchkey-nats");
    const volume = nats.spec.volumes?.find((candidate) => candidate.name === "config");
    const configMap = findObject(objects, "ConfigMap", volume?.configMap?.name ?? "");
    const path = join(dir, `${overlay}.conf`);
    writeFileSync(path, (configMap.data as Record<string, string>)["nats.conf"] ?? "");
    // Field references (the pod's name, its IP) get a stand-in value; nothing else is set.
    const env = Object.fromEntries(
      (findContainer(nats, "nats").env ?? []).map((variable) => [
        variable.name,
        (variable as { value?: string }).value ?? `${variable.name.toLowerCase()}-stand-in`,
      ]),
    );
    const server = findNatsServer();
    if (server === undefined) throw new Error("nats-server is not installed (apt-get install nats-server)");
    const result = spawnSync(server, ["-c", path, "-t"], { env, encoding: "utf8" });
    expect(`${result.stdout}${result.stderr}`.trim()).toMatch(/configuration file .* is valid$/);
    expect(result.status).toBe(0);
  });
});
