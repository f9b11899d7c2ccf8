import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { isUnauthenticated } from "./api.js";
import { Loading } from "./components/states.js";
import { href, type Route, useRoute } from "./router.js";
import { forgetKey, type Session, signIn, storedKey } from "./session.js";
import { AuditView } from "./views/audit-view.js";
import { KeyDetailView } from "./views/key-detail-view.js";
import { KeychainsView } from "./views/keychains-view.js";
import { SignInView } from "./views/sign-in-view.js";
import { TeamKeysView } from "./views/team-keys-view.js";
import { TeamsView } from "./views/teams-view.js";

/** What a screen gets: the session, and a way to say the server refused the key. */
export interface ScreenProps {
  readonly session: Session;
  /** Call with any failed call's error: an UNAUTHENTICATED one signs the console out. */
  readonly onCallError: (error: unknown) => void;
}

/**
 * The console: sign-in, then a header with the screens and the screen the fragment names. A key
 * kept in this tab's sessionStorage is checked again on load; a refused key signs out.
 */
export function App() {
  const [session, setSession] = useState<Session | undefined>();
  const [restoring, setRestoring] = useState(() => storedKey() !== undefined);
  const [notice, setNotice] = useState<string | undefined>();
  const route = useRoute();

  useEffect(() => {
    const key = storedKey();
    if (key === undefined) return;
    signIn(key).then((outcome) => {
      if (outcome.ok) setSession(outcome.session);
      else {
        forgetKey();
        setNotice(outcome.message);
      }
      setRestoring(false);
    });
  }, []);

  const signOut = useCallback((why?: string) => {
    forgetKey();
    setSession(undefined);
    setNotice(why);
  }, []);
  const onCallError = useCallback(
    (error: unknown) => {
      if (isUnauthenticated(error)) signOut("The token-service no longer accepts this key. Sign in again.");
    },
    [signOut],
  );

  if (restoring) return <Loading what="your session" />;
  if (session === undefined) return <SignInView onSignedIn={setSession} {...(notice ? { notice } : {})} />;
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <Header session={session} route={route} onSignOut={() => signOut()} />
      <Screen session={session} route={route} onCallError={onCallError} />
    </>
  );
}

function Header({ session, route, onSignOut }: { session: Session; route: Route; onSignOut: () => void }) {
  const home: Route =
    session.identity.kind === "root" ? { name: "teams" } : { name: "team", teamId: session.identity.teamId };
  const links: { label: string; target: Route; active: boolean }[] = [
    { label: "Teams & keys", target: home, active: ["teams", "team", "key"].includes(route.name) },
    { label: "Audit log", target: { name: "audit" }, active: route.name === "audit" },
    { label: "Keychains", target: { name: "keychains" }, active: route.name === "keychains" },
  ];
  return (
    <header class="top">
      <a class="brand" href={href(home)}>
        <span class="brand-mark" aria-hidden="true" /> Latchkey
      </a>
      <nav aria-label="Screens">
        <ul>
          {links.map((link) => (
            <li key={link.label}>
              <a href={href(link.target)} aria-current={link.active ? "page" : undefined}>
                {link.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <div class="who">
        <span class="badge" data-testid="identity">
          {session.identity.kind === "root" ? "root key" : `admin of ${session.identity.teamId}`}
        </span>
        <button type="button" class="button small" onClick={onSignOut}>
          Sign out
        </button>
      </div>
    </header>
  );
}

function Screen({ session, route, onCallError }: ScreenProps & { route: Route }) {
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  // A new screen takes the focus, so keyboard and screen-reader users start at its top (not on the
  // first screen: there the page starts at the skip link, as any page does).
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    main.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [route]);
  const props = { session, onCallError };
  let screen: ComponentChildren;
  switch (route.name) {
    case "teams":
      screen =
        session.identity.kind === "root" ? (
          <TeamsView {...props} />
        ) : (
          <TeamKeysView {...props} teamId={session.identity.teamId} />
        );
      break;
    case "team":
      screen = <TeamKeysView {...props} teamId={route.teamId} />;
      break;
    case "key":
      screen = <KeyDetailView {...props} keyId={route.keyId} />;
      break;
    case "audit":
      screen = <AuditView {...props} {...route} />;
      break;
    case "keychains":
      screen = <KeychainsView {...props} {...(route.teamId ? { teamId: route.teamId } : {})} />;
      break;
    case "not-found":
      screen = (
        <section>
          <h1 tabIndex={-1}>Nothing here</h1>
          <p>
            There is no screen at <code>#{route.path}</code>. <a href="#/teams">Go to teams and keys</a>.
          </p>
        </section>
      );
  }
  return (
    <main id="main" ref={main} tabIndex={-1}>
      {screen}
    </main>
  );
}
