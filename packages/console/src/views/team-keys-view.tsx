import { type Key, KeyStateFilter } from "@latchkey/proto";
import { useEffect, useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { LabeledInput } from "../components/labeled-input.js";
import { Empty, ErrorNote, Loading } from "../components/states.js";
import { keyState, relativeTime } from "../format.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";
import { CreateKeyForm } from "./create-key-form.js";

/** The state filter's choices: the server's KeyStateFilter, plus whether revoked keys count. */
const STATES = [
  { value: "current", label: "not revoked", state: KeyStateFilter.UNSPECIFIED, includeRevoked: false },
  { value: "all", label: "all, revoked too", state: KeyStateFilter.UNSPECIFIED, includeRevoked: true },
  { value: "active", label: "active", state: KeyStateFilter.ACTIVE, includeRevoked: false },
  { value: "disabled", label: "disabled", state: KeyStateFilter.DISABLED, includeRevoked: false },
  { value: "expired", label: "expired", state: KeyStateFilter.EXPIRED, includeRevoked: false },
  { value: "revoked", label: "revoked", state: KeyStateFilter.REVOKED, includeRevoked: true },
] as const;

/** How long typing in a filter field waits before asking the server. */
const TYPING_PAUSE_MS = 300;

/**
 * A team's keys, newest first, a page at a time (List), filtered by the server by name, environment
 * and state, so every page holds only matching keys. The form above makes a key (Issue) and shows
 * its token once.
 */
export function TeamKeysView({ session, onCallError, teamId }: ScreenProps & { teamId: string }) {
  const { api } = session;
  const [typedName, setTypedName] = useState("");
  const [typedEnvironment, setTypedEnvironment] = useState("");
  const [filters, setFilters] = useState({ name: "", environment: "" });
  const [stateChoice, setStateChoice] = useState<(typeof STATES)[number]["value"]>("current");
  // Typing settles for a moment before the list is asked for again.
  useEffect(() => {
    const environment = typedEnvironment.trim();
    const timer = setTimeout(
      () =>
        setFilters((previous) =>
          previous.name === typedName && previous.environment === environment
            ? previous
            : { name: typedName, environment },
        ),
      TYPING_PAUSE_MS,
    );
    return () => clearTimeout(timer);
  }, [typedName, typedEnvironment]);
  const choice = STATES.find((each) => each.value === stateChoice) ?? STATES[0];
  const request = (pageToken = "") => ({
    teamId,
    pageSize: 50,
    pageToken,
    includeRevoked: choice.includeRevoked,
    state: choice.state,
    nameContains: filters.name,
    environment: filters.environment,
  });
  const [pages, setPages] = useState<{ keys: Key[]; next: string }>({ keys: [], next: "" });
  const [state, reload] = useAsync(async () => {
    try {
      const page = await api.tokens.list(request());
      setPages({ keys: page.keys, next: page.nextPageToken });
      return true;
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [api, teamId, choice, filters]);
  const [moreError, setMoreError] = useState<unknown>();
  const loadMore = async () => {
    try {
      const page = await api.tokens.list(request(pages.next));
      setPages({ keys: [...pages.keys, ...page.keys], next: page.nextPageToken });
    } catch (error) {
      onCallError(error);
      setMoreError(error);
    }
  };
  const filtered = filters.name !== "" || filters.environment !== "" || stateChoice !== "current";
  return (
    <section aria-labelledby="keys-title">
      <div class="screen-head">
        <h1 id="keys-title" tabIndex={-1}>
          Keys of <span class="mono">{teamId}</span>
        </h1>
        <p class="card-links">
          <a href={href({ name: "audit", teamId })}>Audit log</a>
          <a href={href({ name: "keychains", teamId })}>Keychains</a>
        </p>
      </div>
      <CreateKeyForm session={session} onCallError={onCallError} teamId={teamId} onCreated={reload} />
      <form class="filters" onSubmit={(event) => event.preventDefault()} aria-label="Filter keys">
        <LabeledInput
          id="filter-name"
          label="Name"
          type="search"
          value={typedName}
          onInput={(event) => setTypedName(event.currentTarget.value)}
          placeholder="contains…"
          maxLength={100}
        />
        <LabeledInput
          id="filter-env"
          label="Environment"
          type="search"
          value={typedEnvironment}
          onInput={(event) => setTypedEnvironment(event.currentTarget.value)}
          placeholder="any: live, test, prod…"
          maxLength={32}
        />
        <div>
          <label for="filter-state">State</label>
          <select
            id="filter-state"
            value={stateChoice}
            onChange={(event) => setStateChoice(event.currentTarget.value as typeof stateChoice)}
          >
            {STATES.map((each) => (
              <option key={each.value} value={each.value}>
                {each.label}
              </option>
            ))}
          </select>
        </div>
      </form>
      {state.status === "loading" ? <Loading what="keys" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" && pages.keys.length === 0 && !filtered ? (
        <Empty title="This team has no keys yet">
          <p>Create one above: its token is shown once, then only its hint.</p>
        </Empty>
      ) : null}
      {state.status === "ready" && pages.keys.length === 0 && filtered ? (
        <Empty title="No key matches these filters">
          <p>Change the filters to see more keys.</p>
        </Empty>
      ) : null}
      {state.status === "ready" && pages.keys.length > 0 ? <KeyTable keys={pages.keys} /> : null}
      {state.status === "ready" && pages.next ? (
        <button type="button" class="button" onClick={loadMore}>
          Load more keys
        </button>
      ) : null}
      {moreError ? <ErrorNote error={moreError} /> : null}
    </section>
  );
}

function KeyTable({ keys }: { keys: Key[] }) {
  return (
    <table class="table" data-testid="keys">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Key</th>
          <th scope="col">Env</th>
          <th scope="col">Scopes</th>
          <th scope="col">State</th>
          <th scope="col">Last used</th>
          <th scope="col">24 h</th>
        </tr>
      </thead>
      <tbody>
        {keys.map((key) => {
          const state = keyState(key);
          return (
            <tr key={key.id}>
              <td data-label="Name">
                <a href={href({ name: "key", keyId: key.id })}>{key.name || key.id}</a>
              </td>
              <td data-label="Key" class="mono">
                {key.hint}
              </td>
              <td data-label="Env">{key.environment}</td>
              <td data-label="Scopes">{key.keychainId ? "keychain" : key.scopes.join(" ") || "—"}</td>
              <td data-label="State">
                <span class={`badge state-${state}`}>{state}</span>
              </td>
              <td data-label="Last used">{relativeTime(key.lastUsedTime)}</td>
              <td data-label="24 h">{String(key.requests24h)}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
