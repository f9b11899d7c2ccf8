import type { Key, KeyTraffic } from "@latchkey/proto";
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { AuditTable } from "../components/audit-table.js";
import { Empty, ErrorNote, Loading } from "../components/states.js";
import { formatTime, keyState, relativeTime } from "../format.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";
import { KeyActions } from "./key-actions.js";
import { KeyUsage } from "./key-usage.js";

/**
 * One key: its fields and last use, requests per minute by outcome, its rate limits, what can be
 * done to it, and its audit history. A key made by Rotate shows how busy the key it replaced still is.
 */
export function KeyDetailView({ session, onCallError, keyId }: ScreenProps & { keyId: string }) {
  // Bumped by every change made here, so the history shows it at once.
  const [changes, setChanges] = useState(0);
  const [state, reload] = useAsync(async () => {
    try {
      return await session.api.tokens.get({ keyId });
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [session, keyId]);
  if (state.status === "loading") return <Loading what="the key" />;
  if (state.status === "error") {
    return (
      <section>
        <h1 tabIndex={-1}>Key {keyId}</h1>
        <ErrorNote error={state.error} onRetry={reload} />
      </section>
    );
  }
  const { key, predecessorTraffic } = state.value;
  if (key === undefined) return <ErrorNote error={new Error("the token-service answered without the key")} />;
  const status = keyState(key);
  return (
    <section aria-labelledby="key-title" class="key-detail">
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href={href({ name: "team", teamId: key.teamId })}>Keys of {key.teamId}</a>
      </nav>
      <div class="screen-head">
        <h1 id="key-title" tabIndex={-1}>
          {key.name || key.id} <span class={`badge state-${status}`}>{status}</span>
        </h1>
        <p class="mono muted">{key.hint}</p>
      </div>
      {predecessorTraffic ? <Predecessor traffic={predecessorTraffic} /> : null}
      <div class="columns">
        <KeyFacts keyData={key} />
        <RateLimits keyData={key} />
      </div>
      <KeyUsage session={session} onCallError={onCallError} keyId={key.id} onRefresh={reload} />
      {key.rotatedFrom ? (
        <KeyUsage
          session={session}
          onCallError={onCallError}
          keyId={key.rotatedFrom}
          onRefresh={reload}
          title="The key it replaced: requests per minute"
          name="replaced"
        />
      ) : null}
      <KeyActions
        session={session}
        onCallError={onCallError}
        keyData={key}
        onChanged={() => {
          reload();
          setChanges((n) => n + 1);
        }}
      />
      <KeyAudit session={session} onCallError={onCallError} keyId={key.id} changes={changes} />
    </section>
  );
}

function Predecessor({ traffic }: { traffic: KeyTraffic }) {
  const quiet = traffic.requestsLast5m === 0n;
  return (
    <p class={`notice ${quiet ? "success" : "caution"}`} role="note">
      This key replaced <a href={href({ name: "key", keyId: traffic.keyId })}>{traffic.keyId}</a>, which
      served <strong>{String(traffic.requestsLast5m)}</strong> requests in the last 5 minutes (last used{" "}
      {relativeTime(traffic.lastUsedTime)}).{" "}
      {quiet
        ? "Nothing uses it any more: it looks safe to revoke."
        : "Something still uses it: not safe to revoke yet."}
    </p>
  );
}

function KeyFacts({ keyData: key }: { keyData: Key }) {
  const rows: [string, ComponentChildren][] = [
    ["Id", <span class="mono">{key.id}</span>],
    [
      "Last used",
      key.lastUsedTime ? `${formatTime(key.lastUsedTime)} (${relativeTime(key.lastUsedTime)})` : "never",
    ],
    ["Requests, 24 h", String(key.requests24h)],
    ["Environment", key.environment],
    ["Scopes", key.keychainId ? `keychain ${key.keychainId}` : key.scopes.join(" ") || "none"],
    ["Created", `${formatTime(key.createTime)} by ${key.createdBy || "?"}`],
    ["Expires", formatTime(key.expireTime, "never")],
  ];
  if (key.revokeTime)
    rows.push(["Revoked", `${formatTime(key.revokeTime)}${key.revokeReason ? `: ${key.revokeReason}` : ""}`]);
  if (key.rotatedFrom)
    rows.push(["Replaced", <a href={href({ name: "key", keyId: key.rotatedFrom })}>{key.rotatedFrom}</a>]);
  if (key.owner) rows.push(["Owner", key.owner]);
  if (key.tier) rows.push(["Tier", key.tier]);
  if (key.format) rows.push(["Format", key.format]);
  if (key.externalId) rows.push(["External id", key.externalId]);
  if (key.usageLimit) {
    rows.push([
      "Uses left",
      `${key.usageLimit.remaining}${key.usageLimit.nextRefillTime ? `, refilled ${formatTime(key.usageLimit.nextRefillTime)}` : ""}`,
    ]);
  }
  const metadata = Object.entries(key.metadata);
  if (metadata.length > 0)
    rows.push(["Metadata", metadata.map(([name, value]) => `${name}=${value}`).join(", ")]);
  return (
    <section class="panel" aria-labelledby="facts-title">
      <h2 id="facts-title">Details</h2>
      <dl class="facts" data-testid="key-facts">
        {rows.map(([term, value]) => (
          <div key={term}>
            <dt>{term}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

function RateLimits({ keyData: key }: { keyData: Key }) {
  return (
    <section class="panel" aria-labelledby="limits-title">
      <h2 id="limits-title">Rate limits</h2>
      {key.rateLimits.length === 0 ? (
        <p class="muted">
          None of its own{key.tier ? `: the limits of tier ${key.tier} apply` : ""}. Sidecars apply their
          rate-limit file's limits for its tier and scopes.
        </p>
      ) : (
        <ul class="plain" data-testid="rate-limits">
          {key.rateLimits.map((limit) => (
            <li key={limit.name}>
              <strong>{limit.name}</strong>: {String(limit.limit)} requests per{" "}
              {Number(limit.window?.seconds ?? 0n)} s
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

function KeyAudit({
  session,
  onCallError,
  keyId,
  changes,
}: ScreenProps & { keyId: string; changes: number }) {
  const [state, reload] = useAsync(async () => {
    try {
      return (await session.api.audit.listAuditEvents({ keyId, pageSize: 20 })).events;
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [session, keyId, changes]);
  return (
    <section class="panel" aria-labelledby="key-audit-title">
      <div class="panel-head">
        <h2 id="key-audit-title">History</h2>
        <div class="actions">
          <button type="button" class="button small" onClick={reload}>
            Refresh
          </button>
          <a href={href({ name: "audit", keyId })}>Full audit log</a>
        </div>
      </div>
      {state.status === "loading" ? <Loading what="history" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" && state.value.length === 0 ? (
        <Empty title="No audit entries for this key" />
      ) : null}
      {state.status === "ready" && state.value.length > 0 ? (
        <AuditTable events={state.value} showKey={false} />
      ) : null}
    </section>
  );
}
