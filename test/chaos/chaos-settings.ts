// The chaos run's knobs, from its command line (`--only` takes fault names from chaos-faults.ts), and the staleness bound they imply.

/** What a chaos run does, and how hard. */
export interface ChaosSettings {
  /** Rounds of the whole fault list (`--rounds`, default 3; `--short`: 1). */
  readonly rounds: number;
  readonly sidecars: number;
  /** The sidecars' `LATCHKEY_MAX_STALE_MS`. */
  readonly maxStaleMs: number;
  /** The deadline of one Verify RPC in the verifier (its `timeoutMs`, 2 000 ms; the sidecar has no setting for it). */
  readonly verifyTimeoutMs: number;
  /** The token-services' `LATCHKEY_OUTBOX_CURRENCY_MS`. */
  readonly outboxCurrencyMs: number;
  /**
   * A request sent this long after `Revoke` returned must not be accepted:
   * `maxStaleMs` (a cached VALID answer or proof of currency older than that is
   * not served) plus one Verify (a request may join a Verify RPC that was sent
   * before the revocation committed and answers VALID at most `verifyTimeoutMs` later).
   */
  readonly boundMs: number;
  /** How long each fault lasts before it heals (`--hold-ms`, default 5 000: longer than the bound). */
  readonly holdMs: number;
  /** After a fault heals, every part must work again within this (`--recover-ms`, default 45 000). */
  readonly recoverMs: number;
  /** Requests per second the load generator aims at, over all sidecars (`--rate`, default 150). */
  readonly rate: number;
  /** A fresh revocation this often (`--revoke-every-ms`, default 400). */
  readonly revokeEveryMs: number;
  /** Keys never revoked (the valid half of the load). */
  readonly validKeys: number;
  /** Print, after each fault, the warnings each process logged during it (`--verbose`). */
  readonly verbose: boolean;
  /** Only these faults, by name (`--only a,b`); every fault when left out. */
  readonly only?: readonly string[];
}

/**
 * Reads the settings from `argv` (`--short`, `--verbose`, `--only a,b`, `--rounds N`, `--hold-ms N`, `--recover-ms N`,
 * `--rate N`, `--revoke-every-ms N`); anything else stops the run with its name.
 *
 * @example
 * ```ts
 * const settings = parseChaosSettings(process.argv.slice(2));
 * ```
 */
export function parseChaosSettings(argv: readonly string[]): ChaosSettings {
  const numbers: Record<string, number> = {
    rounds: 3,
    "hold-ms": 5_000,
    "recover-ms": 45_000,
    rate: 150,
    "revoke-every-ms": 400,
  };
  let short = false;
  let verbose = false;
  let only: string[] | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg === "--short") {
      short = true;
      continue;
    }
    if (arg === "--verbose") {
      verbose = true;
      continue;
    }
    if (arg === "--only") {
      only = (argv[++i] ?? "").split(",").filter((name) => name !== "");
      continue;
    }
    const name = arg.startsWith("--") ? arg.slice(2) : "";
    if (!(name in numbers)) {
      throw new Error(
        `unknown argument ${JSON.stringify(arg)}: use --short, --verbose, --only NAMES, --${Object.keys(numbers).join(" N, --")} N`,
      );
    }
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value <= 0) throw new Error(`--${name} must be a positive whole number`);
    numbers[name] = value;
  }
  const maxStaleMs = 2_000;
  const verifyTimeoutMs = 2_000;
  return {
    rounds: short ? 1 : (numbers.rounds ?? 3),
    sidecars: 4,
    maxStaleMs,
    verifyTimeoutMs,
    outboxCurrencyMs: 100,
    boundMs: maxStaleMs + verifyTimeoutMs,
    holdMs: numbers["hold-ms"] ?? 5_000,
    recoverMs: numbers["recover-ms"] ?? 45_000,
    rate: numbers.rate ?? 150,
    revokeEveryMs: numbers["revoke-every-ms"] ?? 400,
    validKeys: 20,
    verbose,
    ...(only === undefined ? {} : { only }),
  };
}

/** The first line of the run's output: every setting that shapes the result. */
export function describeSettings(settings: ChaosSettings): string {
  return (
    `chaos settings rounds=${settings.rounds} sidecars=${settings.sidecars} token_services=2 nats_nodes=3 ` +
    `stream_replicas=3 max_stale_ms=${settings.maxStaleMs} verify_timeout_ms=${settings.verifyTimeoutMs} ` +
    `outbox_currency_ms=${settings.outboxCurrencyMs} bound_ms=${settings.boundMs} ` +
    `(wrong accept = an accept of a request sent more than max_stale_ms + verify_timeout_ms after Revoke returned) ` +
    `hold_ms=${settings.holdMs} recover_ms=${settings.recoverMs} rate=${settings.rate} ` +
    `revoke_every_ms=${settings.revokeEveryMs}${settings.only ? ` only=${settings.only.join(",")}` : ""}`
  );
}
