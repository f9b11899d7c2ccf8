import { type KubeObject, OVERLAYS, type OverlayName, renderOverlay } from "./render-overlay.js";

/** A rendered set of manifests the checks run over: an overlay, or a component applied to a sample. */
export interface Rendering {
  /** For test names: "overlay dev". */
  readonly name: string;
  /** The overlay whose documented external Secrets apply. */
  readonly overlay: OverlayName;
  readonly objects: readonly KubeObject[];
}

/** Every overlay. */
export const RENDERINGS: readonly Rendering[] = [
  ...OVERLAYS.map((overlay) => ({ name: `overlay ${overlay}`, overlay, objects: renderOverlay(overlay) })),
];
