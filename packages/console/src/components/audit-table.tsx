import type { JsonObject } from "@bufbuild/protobuf";
import type { AuditEvent } from "@latchkey/proto";
import { formatTime } from "../format.js";
import { href } from "../router.js";

/** Audit entries, newest first: when, who, what, which team and key, and the details. */
export function AuditTable({ events, showKey = true }: { events: readonly AuditEvent[]; showKey?: boolean }) {
  return (
    <table class="table audit" data-testid="audit-events">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Who</th>
          <th scope="col">Action</th>
          <th scope="col">Team</th>
          {showKey ? <th scope="col">Key</th> : null}
          <th scope="col">Details</th>
        </tr>
      </thead>
      <tbody>
        {events.map((event) => (
          <tr key={event.id}>
            <td data-label="When">{formatTime(event.createTime)}</td>
            <td data-label="Who" class="mono">
              {event.actor.startsWith("key_") ? (
                <a href={href({ name: "key", keyId: event.actor })}>{event.actor}</a>
              ) : (
                event.actor
              )}
            </td>
            <td data-label="Action">
              <span class="badge action">{event.action}</span>
            </td>
            <td data-label="Team" class="mono">
              {event.teamId ? <a href={href({ name: "team", teamId: event.teamId })}>{event.teamId}</a> : "—"}
            </td>
            {showKey ? (
              <td data-label="Key" class="mono">
                {event.keyId ? <a href={href({ name: "key", keyId: event.keyId })}>{event.keyId}</a> : "—"}
              </td>
            ) : null}
            <td data-label="Details" class="details">
              {detailsText(event.details)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The details object as `name: value` pairs on one line (values never include secrets: the server leaves them out). */
export function detailsText(details: JsonObject | undefined): string {
  if (details === undefined) return "";
  return Object.entries(details)
    .map(([name, value]) => `${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`)
    .join(", ");
}
