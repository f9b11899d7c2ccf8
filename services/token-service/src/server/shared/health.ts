import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@latchkey/proto/grpc";
import { registerService, type ServiceRegistration } from "./service-registration.js";

export { ServingStatus };

/** `grpc.health.v1.Health` with a status per service name; `""` is the server as a whole. */
export interface HealthService extends ServiceRegistration {
  /** Sets the status of `service` (`""`: the whole server) and tells its watchers. */
  setStatus(service: string, status: ServingStatus): void;
  /**
   * For shutdown: marks every service NOT_SERVING, tells watchers, then ends
   * their Watch streams so they do not hold the drain open. Later `setStatus`
   * calls are ignored.
   */
  shutdown(): void;
}

/**
 * Implements the gRPC health protocol
 * (https://github.com/grpc/grpc/blob/master/doc/health-checking.md):
 * Check answers NOT_FOUND for a service it has no status for; Watch sends the
 * current status (SERVICE_UNKNOWN when unknown) and then every change, until
 * the client goes away or {@link HealthService.shutdown}.
 *
 * @example
 * ```ts
 * const health = createHealthService({ "": ServingStatus.SERVING, "latchkey.v1.TokenService": ServingStatus.SERVING });
 * process.once("SIGTERM", () => health.shutdown());
 * ```
 */
export function createHealthService(
  initial: Readonly<Record<string, ServingStatus>> = { "": ServingStatus.SERVING },
): HealthService {
  const statuses = new Map<string, ServingStatus>(Object.entries(initial));
  const watchers = new Set<() => void>();
  let shutDown = false;
  const notify = () => {
    for (const wake of watchers) {
      wake();
    }
  };

  async function* watch(service: string, signal: AbortSignal) {
    let sent: ServingStatus | undefined;
    let wake: (() => void) | undefined;
    const changed = () => wake?.();
    watchers.add(changed);
    signal.addEventListener("abort", changed);
    try {
      for (;;) {
        const current = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (current !== sent) {
          sent = current;
          yield { status: current };
          continue; // it may have changed again while the consumer was busy
        }
        if (shutDown || signal.aborted) {
          return;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      watchers.delete(changed);
      signal.removeEventListener("abort", changed);
    }
  }

  const registration = registerService(Health, {
    async check(request) {
      const status = statuses.get(request.service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(request.service)}`, Code.NotFound);
      }
      return { status };
    },
    watch: (request, context) => watch(request.service, context.signal),
    async list() {
      return { statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])) };
    },
  });

  return {
    ...registration,
    setStatus(service, status) {
      if (!shutDown) {
        statuses.set(service, status);
        notify();
      }
    },
    shutdown() {
      shutDown = true;
      for (const service of statuses.keys()) {
        statuses.set(service, ServingStatus.NOT_SERVING);
      }
      notify();
    },
  };
}
