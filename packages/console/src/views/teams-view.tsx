import type { Team } from "@latchkey/proto";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { Empty, ErrorNote, Loading } from "../components/states.js";
import { formatTime } from "../format.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";

/** The root key's home: every team, a page at a time, and a form for a new one. */
export function TeamsView({ session, onCallError }: ScreenProps) {
  const { api } = session;
  const [extra, setExtra] = useState<{ teams: Team[]; next: string }>({ teams: [], next: "" });
  const [state, reload] = useAsync(async () => {
    try {
      const first = await api.teams.listTeams({ pageSize: 50 });
      setExtra({ teams: [], next: first.nextPageToken });
      return first.teams;
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [api]);
  const [moreError, setMoreError] = useState<unknown>();
  const loadMore = async () => {
    try {
      const page = await api.teams.listTeams({ pageSize: 50, pageToken: extra.next });
      setExtra({ teams: [...extra.teams, ...page.teams], next: page.nextPageToken });
    } catch (error) {
      onCallError(error);
      setMoreError(error);
    }
  };
  return (
    <section aria-labelledby="teams-title">
      <div class="screen-head">
        <h1 id="teams-title" tabIndex={-1}>
          Teams
        </h1>
      </div>
      <CreateTeam session={session} onCallError={onCallError} onCreated={reload} />
      {state.status === "loading" ? <Loading what="teams" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" && state.value.length === 0 ? (
        <Empty title="No teams yet">
          <p>Create the first team above; its keys, audit log and keychains then appear here.</p>
        </Empty>
      ) : null}
      {state.status === "ready" && state.value.length > 0 ? (
        <>
          <ul class="cards" data-testid="teams">
            {[...state.value, ...extra.teams].map((team) => (
              <li key={team.id} class="card">
                <a class="card-title" href={href({ name: "team", teamId: team.id })}>
                  {team.name}
                </a>
                <span class="mono muted">{team.id}</span>
                <span class="muted">created {formatTime(team.createTime)}</span>
                {team.keyFormat ? <span class="muted">key format {team.keyFormat}</span> : null}
                <span class="card-links">
                  <a href={href({ name: "audit", teamId: team.id })}>Audit log</a>
                  <a href={href({ name: "keychains", teamId: team.id })}>Keychains</a>
                </span>
              </li>
            ))}
          </ul>
          {extra.next ? (
            <button type="button" class="button" onClick={loadMore}>
              Load more teams
            </button>
          ) : null}
          {moreError ? <ErrorNote error={moreError} /> : null}
        </>
      ) : null}
    </section>
  );
}

function CreateTeam({ session, onCallError, onCreated }: ScreenProps & { onCreated: () => void }) {
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const name = (form.elements.namedItem("team-name") as HTMLInputElement).value.trim();
    setBusy(true);
    setError(undefined);
    try {
      const { team } = await session.api.teams.createTeam({ name });
      form.reset();
      onCreated();
      if (team) location.hash = href({ name: "team", teamId: team.id });
    } catch (caught) {
      onCallError(caught);
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="panel inline-form" onSubmit={submit} aria-label="Create a team">
      <label for="team-name">New team</label>
      <input id="team-name" name="team-name" placeholder="payments" required autocomplete="off" />
      <button type="submit" class="button primary" disabled={busy}>
        Create team
      </button>
      {error ? <ErrorNote error={error} /> : null}
    </form>
  );
}
