import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { ShowOnceToken } from "../components/show-once-token.js";
import { ErrorNote } from "../components/states.js";
import { parseMetadata, parseScopes } from "../format.js";
import { href } from "../router.js";

/**
 * "New key": the Issue form (name, environment, scopes, metadata), then the token shown once with
 * a link to the new key. `onCreated` lets the list show it.
 */
export function CreateKeyForm({
  session,
  onCallError,
  teamId,
  onCreated,
}: ScreenProps & { teamId: string; onCreated: () => void }) {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<{ token: string; keyId: string } | undefined>();
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
    setBusy(true);
    setError(undefined);
    try {
      const response = await session.api.tokens.issue({
        teamId,
        name: value("key-name").trim(),
        environment: value("key-env").trim(),
        scopes: parseScopes(value("key-scopes")),
        metadata: parseMetadata(value("key-metadata")),
      });
      form.reset();
      setOpen(false);
      setCreated({ token: response.token, keyId: response.key?.id ?? "" });
      onCreated();
    } catch (caught) {
      onCallError(caught);
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  if (created) {
    return (
      <>
        <ShowOnceToken title="Your new key" token={created.token} onDone={() => setCreated(undefined)} />
        <p>
          <a href={href({ name: "key", keyId: created.keyId })}>Open the new key</a>
        </p>
      </>
    );
  }
  if (!open) {
    return (
      <button type="button" class="button primary" onClick={() => setOpen(true)}>
        New key
      </button>
    );
  }
  return (
    <form class="panel form-grid" onSubmit={submit} aria-label="Create a key">
      <h2>New key</h2>
      <label for="key-name">Name</label>
      <input id="key-name" name="key-name" required placeholder="prod-chat-worker" autocomplete="off" />
      <label for="key-env">Environment</label>
      <input
        id="key-env"
        name="key-env"
        defaultValue="live"
        autocomplete="off"
        aria-describedby="key-env-help"
      />
      <p id="key-env-help" class="hint">
        live, test, or a label such as prod or staging.
      </p>
      <label for="key-scopes">Scopes</label>
      <input id="key-scopes" name="key-scopes" placeholder="read chats:write" autocomplete="off" />
      <label for="key-metadata">Metadata</label>
      <textarea id="key-metadata" name="key-metadata" rows={2} placeholder="owner=payments" />
      {error ? <ErrorNote error={error} /> : null}
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? "Creating…" : "Create key"}
        </button>
        <button type="button" class="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      </div>
    </form>
  );
}
