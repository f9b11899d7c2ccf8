import { join } from "node:path";
import {
  type KubeObject,
  OVERLAYS,
  type OverlayName,
  REPO_ROOT,
  renderDirectory,
  renderOverlay,
} from "./render-overlay.js";

/** A rendered set of manifests the checks run over: an overlay, or a component applied to a sample. */
export interface Rendering {
  /** For test names: "overlay dev". */
  readonly name: string;
  /** The overlay whose documented external Secrets apply. */
  readonly overlay: OverlayName;
  readonly objects: readonly KubeObject[];
}

/** A user's own app with components/sidecar-injection applied (test/deploy/fixtures/sidecar-injection). */
export const SIDECAR_INJECTION_SAMPLE: Rendering = {
  name: "sidecar-injection sample",
  // It refers to no Secret; dev's (empty) list of external Secrets applies.
  overlay: "dev",
  objects: renderDirectory(join(REPO_ROOT, "test", "deploy", "fixtures", "sidecar-injection")),
};

/** Every overlay, and the sidecar-injection component applied to a sample app. */
export const RENDERINGS: readonly Rendering[] = [
  ...OVERLAYS.map((overlay) => ({ name: `overlay ${overlay}`, overlay, objects: renderOverlay(overlay) })),
  SIDECAR_INJECTION_SAMPLE,
];
