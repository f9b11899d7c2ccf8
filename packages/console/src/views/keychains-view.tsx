import type { AuditEvent, Grant, Keychain, SecretInfo } from "@latchkey/proto";
import { useState } from "preact/hooks";
import type { ScreenProps } from "../app.js";
import { Empty, ErrorNote, Loading } from "../components/states.js";
import { formatTime, relativeTime } from "../format.js";
import { href } from "../router.js";
import { useAsync } from "../use-async.js";

/**
 * A team's keychains (KeychainService): each one's secret names (never values: no RPC returns them
 * to an admin), the packages it grants with their pinned version and digest, and each grant's
 * digest status, read from the keychain's audit entries (its last resolution or refusal).
 */
export function KeychainsView({ session, onCallError, teamId }: ScreenProps & { teamId?: string }) {
  const own = session.identity.kind === "team-admin" ? session.identity.teamId : undefined;
  const team = teamId ?? own;
  const [state, reload] = useAsync(async () => {
    try {
      if (team === undefined) {
        return {
          kind: "teams" as const,
          teams: (await session.api.teams.listTeams({ pageSize: 100 })).teams,
        };
      }
      return {
        kind: "keychains" as const,
        keychains: (await session.api.keychains.listKeychains({ teamId: team, includeRevoked: true }))
          .keychains,
      };
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [session, team]);
  return (
    <section aria-labelledby="keychains-title">
      <div class="screen-head">
        <h1 id="keychains-title" tabIndex={-1}>
          Keychains{team ? <span class="mono"> of {team}</span> : null}
        </h1>
        <p class="muted">
          Third-party secrets shared with packages by double opt-in. Values are never shown.
        </p>
      </div>
      {state.status === "loading" ? <Loading what="keychains" /> : null}
      {state.status === "error" ? <ErrorNote error={state.error} onRetry={reload} /> : null}
      {state.status === "ready" && state.value.kind === "teams" ? (
        state.value.teams.length === 0 ? (
          <Empty title="No teams yet">
            <p>Keychains belong to a team: create a team first.</p>
          </Empty>
        ) : (
          <>
            <p>Choose a team:</p>
            <ul class="cards">
              {state.value.teams.map((t) => (
                <li key={t.id} class="card">
                  <a class="card-title" href={href({ name: "keychains", teamId: t.id })}>
                    {t.name}
                  </a>
                  <span class="mono muted">{t.id}</span>
                </li>
              ))}
            </ul>
          </>
        )
      ) : null}
      {state.status === "ready" && state.value.kind === "keychains" ? (
        state.value.keychains.length === 0 ? (
          <Empty title="This team has no keychains">
            <p>
              Keychains are made with <code>KeychainService/CreateKeychain</code>; the README's keychain walk
              shows how.
            </p>
          </Empty>
        ) : (
          <ul class="keychains" data-testid="keychains">
            {state.value.keychains.map((keychain) => (
              <KeychainCard
                key={keychain.id}
                session={session}
                onCallError={onCallError}
                keychain={keychain}
              />
            ))}
          </ul>
        )
      ) : null}
    </section>
  );
}

interface KeychainDetails {
  secrets: SecretInfo[];
  grants: Grant[];
  resolutions: AuditEvent[];
}

function KeychainCard({ session, onCallError, keychain }: ScreenProps & { keychain: Keychain }) {
  const [open, setOpen] = useState(false);
  const revoked = keychain.revokeTime !== undefined;
  return (
    <li class="panel">
      <div class="panel-head">
        <h2>
          {keychain.name} {revoked ? <span class="badge state-revoked">revoked</span> : null}
        </h2>
        <button type="button" class="button small" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "Hide" : "Show"} secrets and grants
        </button>
      </div>
      <p class="muted">
        <span class="mono">{keychain.id}</span> · secret <span class="mono">{keychain.hint}</span> · created{" "}
        {formatTime(keychain.createTime)} by {keychain.createdBy} ·{" "}
        <a href={href({ name: "key", keyId: keychain.keyId })}>its key</a>
      </p>
      {open && !revoked ? (
        <KeychainBody session={session} onCallError={onCallError} keychain={keychain} />
      ) : null}
      {open && revoked ? (
        <p class="muted">Revoked {formatTime(keychain.revokeTime)}: its secrets were deleted.</p>
      ) : null}
    </li>
  );
}

function KeychainBody({ session, onCallError, keychain }: ScreenProps & { keychain: Keychain }) {
  const { api } = session;
  const [state, reload] = useAsync(async (): Promise<KeychainDetails> => {
    try {
      const [secrets, grants, audit] = await Promise.all([
        api.keychains.listSecretNames({ keychainId: keychain.id }),
        api.keychains.listGrants({ keychainId: keychain.id }),
        api.audit.listAuditEvents({ keyId: keychain.keyId, pageSize: 200 }),
      ]);
      const resolutions = audit.events.filter((event) => event.action.startsWith("keychain.resolve"));
      return { secrets: secrets.secrets, grants: grants.grants, resolutions };
    } catch (error) {
      onCallError(error);
      throw error;
    }
  }, [api, keychain.id]);
  if (state.status === "loading") return <Loading what="the keychain" />;
  if (state.status === "error") return <ErrorNote error={state.error} onRetry={reload} />;
  const { secrets, grants, resolutions } = state.value;
  return (
    <div class="columns">
      <section aria-label={`Secrets of ${keychain.name}`}>
        <h3>Secret names</h3>
        {secrets.length === 0 ? (
          <p class="muted">No secrets stored.</p>
        ) : (
          <ul class="plain" data-testid="secret-names">
            {secrets.map((secret) => (
              <li key={secret.name}>
                <span class="mono">{secret.name}</span>{" "}
                <span class="muted">
                  set {relativeTime(secret.updateTime)} by {secret.updatedBy}
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
      <section aria-label={`Grants of ${keychain.name}`}>
        <h3>Packages granted</h3>
        {grants.length === 0 ? (
          <p class="muted">No package may read these secrets.</p>
        ) : (
          <ul class="plain" data-testid="grants">
            {grants.map((grant) => (
              <li key={grant.packageName}>
                <strong>{grant.packageName}</strong>@{grant.version} shares{" "}
                {grant.names.join(", ") || "nothing"}
                <br />
                <span class="mono muted" title={grant.sha256}>
                  sha256 {grant.sha256.slice(0, 12)}…
                </span>{" "}
                <DigestStatus grant={grant} resolutions={resolutions} />
              </li>
            ))}
          </ul>
        )}
      </section>
    </div>
  );
}

/** The grant's last resolution: released with the pinned digest, refused (and why), or never asked. */
function DigestStatus({ grant, resolutions }: { grant: Grant; resolutions: AuditEvent[] }) {
  const last = resolutions.find((event) => event.details?.package === grant.packageName);
  if (last === undefined) return <span class="badge">not resolved yet</span>;
  const when = relativeTime(last.createTime);
  if (last.action === "keychain.resolve") {
    const sha = last.details?.sha256;
    const matches = typeof sha === "string" && sha === grant.sha256;
    return (
      <span class={`badge ${matches ? "state-active" : "state-expiring"}`}>
        {matches ? `digest matched, released ${when}` : `released ${when} for an earlier grant`}
      </span>
    );
  }
  const reason = typeof last.details?.reason === "string" ? last.details.reason : last.action;
  return <span class="badge state-revoked">{`refused ${when}: ${reason}`}</span>;
}
