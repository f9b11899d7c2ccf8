import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { UsageGranularity } from "@latchkey/proto";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { ErrorNote, Loading } from "../components/states.js";
import { UsageChart } from "../components/usage-chart.js";
import { useAsync } from "../use-async.js";

const WINDOWS = [
  { minutes: 1440, label: "24 hours" },
  { minutes: 60, label: "1 hour" },
] as const;

/**
 * A key's requests per minute by outcome (GetUsage, minute buckets) over the last 24 h or hour.
 * `name` sets the panel's title and the ids inside it, so a key's page can show the key it replaced too.
 */
export function KeyUsage({
  session,
  onCallError,
  keyId,
  onRefresh,
  title = "Requests per minute",
  name = "usage",
}: ScreenProps & { keyId: string; onRefresh: () => void; title?: string; name?: string }) {
  const [minutes, setMinutes] = useState<number>(1440);
  const [state, reload] = useAsync(async () => {
    // Whole minutes, so the columns line up with the server's minute buckets.
    const endMs = Math.floor(Date.now() / 60_000) * 60_000 + 60_000;
    const startMs = endMs - minutes * 60_000;
    try {
      const usage = await session.api.tokens.getUsage({
        keyId,
        startTime: timestampFromMs(startMs),
        endTime: timestampFromMs(endMs),
        granularity: UsageGranularity.MINUTE,
      });
      return { usage, startMs };
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [session, keyId, minutes]);
  return (
    <section class="panel" aria-labelledby={`${name}-title`}>
      <div class="panel-head">
        <h2 id={`${name}-title`}>{title}</h2>
        <div class="actions">
          <label for={`${name}-window`} class="sr-only">
            Window
          </label>
          <select
            id={`${name}-window`}
            value={String(minutes)}
            onChange={(event) => setMinutes(Number(event.currentTarget.value))}
          >
            {WINDOWS.map((window) => (
              <option key={window.minutes} value={String(window.minutes)}>
                last {window.label}
              </option>
            ))}
          </select>
          <button
            type="button"
            class="button small"
            onClick={() => {
              reload();
              onRefresh();
            }}
          >
            Refresh
          </button>
        </div>
      </div>
      {state.status === "loading" ? <Loading what="usage" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" ? (
        <UsageChart
          usage={state.value.usage}
          startMs={state.value.startMs}
          minutes={minutes}
          idPrefix={name}
        />
      ) : null}
      <p class="hint">
        Counted by every sidecar and verifier, cache hits included; counts trail requests by about a second.
      </p>
    </section>
  );
}
