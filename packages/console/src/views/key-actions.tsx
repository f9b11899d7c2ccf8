import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Key, RotateResponse } from "@latchkey/proto";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { ShowOnceToken } from "../components/show-once-token.js";
import { ErrorNote } from "../components/states.js";
import { metadataText, parseMetadata, parseScopes, propagationText, REVOKE_WAIT_MS } from "../format.js";
import { href } from "../router.js";

const GRACE_PERIODS = [
  { ms: 0, label: "none: the old key stops now" },
  { ms: 3_600_000, label: "1 hour" },
  { ms: 86_400_000, label: "24 hours" },
  { ms: 7 * 86_400_000, label: "7 days" },
] as const;

type Busy = "enable" | "rotate" | "revoke" | "edit" | undefined;

/** Disable/enable, rotate with a grace period, revoke (with its propagation), scope and metadata edits. */
export function KeyActions({
  session,
  onCallError,
  keyData,
  onChanged,
}: ScreenProps & { keyData: Key; onChanged: () => void }) {
  const { api } = session;
  const [busy, setBusy] = useState<Busy>();
  const [error, setError] = useState<unknown>();
  const [rotated, setRotated] = useState<RotateResponse | undefined>();
  const [revoked, setRevoked] = useState<string | undefined>();
  const [confirmRevoke, setConfirmRevoke] = useState(false);
  const run = async (what: Busy, call: () => Promise<void>) => {
    setBusy(what);
    setError(undefined);
    try {
      await call();
      onChanged();
    } catch (caught) {
      onCallError(caught);
      setError(caught);
    } finally {
      setBusy(undefined);
    }
  };
  const inactive = keyData.revokeTime !== undefined;
  const field = (form: HTMLFormElement, name: string) =>
    (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement).value;

  return (
    <section class="panel" aria-labelledby="actions-title">
      <h2 id="actions-title">Manage</h2>
      {error ? <ErrorNote error={error} /> : null}
      {revoked ? (
        <p class="notice success" role="status" data-testid="revoke-confirmation">
          {revoked}
        </p>
      ) : null}
      {rotated ? (
        <>
          <ShowOnceToken
            title="The replacement key"
            token={rotated.token}
            onDone={() => setRotated(undefined)}
          />
          <p>
            The old key keeps working until the grace period ends.{" "}
            <a href={href({ name: "key", keyId: rotated.key?.id ?? "" })}>Open the new key</a> to watch this
            one's traffic fall before you revoke it.
          </p>
        </>
      ) : null}
      {inactive ? (
        <p class="muted">This key is revoked; nothing more can be done to it.</p>
      ) : (
        <div class="action-grid">
          <div>
            <h3>{keyData.enabled ? "Disable" : "Enable"}</h3>
            <p class="hint">
              {keyData.enabled
                ? "A disabled key fails verification until it is enabled again."
                : "This key is disabled: verification answers DISABLED."}
            </p>
            <button
              type="button"
              class="button"
              disabled={busy !== undefined}
              onClick={() =>
                run("enable", async () => {
                  await api.tokens.update({ keyId: keyData.id, enabled: !keyData.enabled });
                })
              }
            >
              {keyData.enabled ? "Disable key" : "Enable key"}
            </button>
          </div>
          <form
            aria-label="Rotate the key"
            onSubmit={(event) => {
              event.preventDefault();
              const ms = Number(field(event.currentTarget, "grace"));
              run("rotate", async () => {
                setRotated(await api.tokens.rotate({ keyId: keyData.id, gracePeriod: durationFromMs(ms) }));
              });
            }}
          >
            <h3>Rotate</h3>
            <label for="grace">Grace period for the old key</label>
            <select id="grace" name="grace">
              {GRACE_PERIODS.map((period) => (
                <option key={period.ms} value={String(period.ms)} selected={period.ms === 86_400_000}>
                  {period.label}
                </option>
              ))}
            </select>
            <button type="submit" class="button" disabled={busy !== undefined}>
              {busy === "rotate" ? "Rotating…" : "Rotate key"}
            </button>
          </form>
          <form
            aria-label="Revoke the key"
            onSubmit={(event) => {
              event.preventDefault();
              if (!confirmRevoke) {
                setConfirmRevoke(true);
                return;
              }
              const reason = field(event.currentTarget, "revoke-reason").trim();
              run("revoke", async () => {
                const response = await api.tokens.revoke({
                  keyId: keyData.id,
                  reason,
                  waitTimeout: durationFromMs(REVOKE_WAIT_MS),
                });
                setConfirmRevoke(false);
                setRevoked(propagationText(response.propagation));
              });
            }}
          >
            <h3>Revoke</h3>
            <label for="revoke-reason">Reason</label>
            <input id="revoke-reason" name="revoke-reason" placeholder="leaked" autocomplete="off" />
            {confirmRevoke ? (
              <p class="warning" role="alert">
                Revoking is permanent: every sidecar and verifier drops this key. Press again to confirm.
              </p>
            ) : null}
            <button type="submit" class="button danger" disabled={busy !== undefined}>
              {busy === "revoke" ? "Revoking…" : confirmRevoke ? "Yes, revoke it" : "Revoke key"}
            </button>
          </form>
          <form
            aria-label="Edit scopes and metadata"
            onSubmit={(event) => {
              event.preventDefault();
              const form = event.currentTarget;
              run("edit", async () => {
                await api.tokens.update({
                  keyId: keyData.id,
                  scopes: { values: parseScopes(field(form, "edit-scopes")) },
                  metadata: { entries: parseMetadata(field(form, "edit-metadata")) },
                });
              });
            }}
          >
            <h3>Scopes and metadata</h3>
            <label for="edit-scopes">Scopes</label>
            <input
              id="edit-scopes"
              name="edit-scopes"
              defaultValue={keyData.scopes.join(" ")}
              autocomplete="off"
            />
            <label for="edit-metadata">Metadata (name=value lines)</label>
            <textarea
              id="edit-metadata"
              name="edit-metadata"
              rows={3}
              defaultValue={metadataText(keyData.metadata)}
            />
            <button type="submit" class="button" disabled={busy !== undefined}>
              {busy === "edit" ? "Saving…" : "Save changes"}
            </button>
          </form>
        </div>
      )}
    </section>
  );
}
