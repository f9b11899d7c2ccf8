import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { AuditEvent, ListAuditEventsRequestSchema } from "@latchkey/proto";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { AuditTable } from "../components/audit-table.js";
import { LabeledInput } from "../components/labeled-input.js";
import { Empty, ErrorNote, Loading } from "../components/states.js";
import { useAsync } from "../use-async.js";

type Filters = { teamId: string; keyId: string; actor: string; action: string; since: string; until: string };

/**
 * The audit log (ListAuditEvents), newest first, a page at a time, filtered by the server by team,
 * key, actor, action (`key` for every `key.*`) and time.
 */
export function AuditView({
  session,
  onCallError,
  teamId,
  keyId,
}: ScreenProps & { teamId?: string; keyId?: string }) {
  const [filters, setFilters] = useState<Filters>({
    teamId: teamId ?? "",
    keyId: keyId ?? "",
    actor: "",
    action: "",
    since: "",
    until: "",
  });
  const [pages, setPages] = useState<{ events: AuditEvent[]; next: string }>({ events: [], next: "" });
  const request = (pageToken = ""): MessageInitShape<typeof ListAuditEventsRequestSchema> => {
    const time = (value: string) => (value ? timestampFromMs(new Date(value).getTime()) : undefined);
    const start = time(filters.since);
    const end = time(filters.until);
    return {
      teamId: filters.teamId.trim(),
      keyId: filters.keyId.trim(),
      actor: filters.actor.trim(),
      action: filters.action.trim(),
      pageSize: 50,
      pageToken,
      ...(start ? { startTime: start } : {}),
      ...(end ? { endTime: end } : {}),
    };
  };
  const [state, reload] = useAsync(async () => {
    try {
      const page = await session.api.audit.listAuditEvents(request());
      setPages({ events: page.events, next: page.nextPageToken });
      return true;
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [session, filters]);
  const [moreError, setMoreError] = useState<unknown>();
  const loadMore = async () => {
    try {
      const page = await session.api.audit.listAuditEvents(request(pages.next));
      setPages({ events: [...pages.events, ...page.events], next: page.nextPageToken });
    } catch (error) {
      onCallError(error);
      setMoreError(error);
    }
  };
  const apply = (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const value = (name: string) => (form.elements.namedItem(name) as HTMLInputElement).value;
    setFilters({
      teamId: value("audit-team"),
      keyId: value("audit-key"),
      actor: value("audit-actor"),
      action: value("audit-action"),
      since: value("audit-since"),
      until: value("audit-until"),
    });
  };
  const shown = pages.events;
  return (
    <section aria-labelledby="audit-title">
      <div class="screen-head">
        <h1 id="audit-title" tabIndex={-1}>
          Audit log
        </h1>
        <p class="muted">Who did what, when, to which key. Refused admin calls are here too.</p>
      </div>
      <form class="filters" onSubmit={apply} aria-label="Filter the audit log">
        <LabeledInput
          id="audit-team"
          label="Team"
          name="audit-team"
          defaultValue={filters.teamId}
          placeholder="team_…"
        />
        <LabeledInput
          id="audit-key"
          label="Key"
          name="audit-key"
          defaultValue={filters.keyId}
          placeholder="key_…"
        />
        <LabeledInput
          id="audit-actor"
          label="Who"
          name="audit-actor"
          defaultValue={filters.actor}
          placeholder="root, anonymous, key_…"
        />
        <LabeledInput
          id="audit-action"
          label="Action"
          name="audit-action"
          defaultValue={filters.action}
          placeholder="key.revoke, or key"
        />
        <div>
          <label for="audit-since">From</label>
          <input id="audit-since" name="audit-since" type="datetime-local" defaultValue={filters.since} />
        </div>
        <div>
          <label for="audit-until">Until</label>
          <input id="audit-until" name="audit-until" type="datetime-local" defaultValue={filters.until} />
        </div>
        <div class="filters-submit">
          <button type="submit" class="button primary">
            Apply filters
          </button>
        </div>
      </form>
      {state.status === "loading" ? <Loading what="the audit log" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" && shown.length === 0 ? (
        <Empty title="No entries match">
          <p>
            {pages.next ? "Load more entries, or widen the filters." : "Widen the filters or the time range."}
          </p>
        </Empty>
      ) : null}
      {state.status === "ready" && shown.length > 0 ? <AuditTable events={shown} /> : null}
      {state.status === "ready" && pages.next ? (
        <button type="button" class="button" onClick={loadMore}>
          Load more entries
        </button>
      ) : null}
      {moreError ? <ErrorNote error={moreError} /> : null}
    </section>
  );
}
