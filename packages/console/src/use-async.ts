import { useCallback, useEffect, useRef, useState } from "preact/hooks";

/** A load in progress, failed, or done. */
export type AsyncState<T> =
  | { readonly status: "loading" }
  | { readonly status: "error"; readonly error: unknown }
  | { readonly status: "ready"; readonly value: T };

/**
 * Runs `load` when `deps` change and keeps its state; `reload` runs it again. An answer that
 * arrives after a newer load started is dropped, so a slow call never overwrites a newer screen.
 *
 * @example
 * ```ts
 * const [state, reload] = useAsync(() => api.tokens.get({ keyId }), [keyId]);
 * ```
 */
export function useAsync<T>(load: () => Promise<T>, deps: readonly unknown[]): [AsyncState<T>, () => void] {
  const [state, setState] = useState<AsyncState<T>>({ status: "loading" });
  const generation = useRef(0);
  const run = useCallback(() => {
    const mine = ++generation.current;
    setState((previous) => (previous.status === "ready" ? previous : { status: "loading" }));
    load().then(
      (value) => mine === generation.current && setState({ status: "ready", value }),
      (error: unknown) => mine === generation.current && setState({ status: "error", error }),
    );
  }, deps);
  useEffect(() => {
    setState({ status: "loading" });
    run();
  }, [run]);
  return [state, run];
}
