import { readFile } from "node:fs/promises";
import { grantRequests } from "./keychain-configuration.js";
import { packageDigest } from "./package-digest.js";
import { packageVersionRequest } from "./package-manifest.js";

// `latchkey-keychain <command>`: the JSON that KeychainService's admin RPCs take, made from a
// package folder and a keychain configuration file, to pipe into `buf curl -d @-`. It talks to
// nothing and holds no secret.

const USAGE = `usage:
  latchkey-keychain digest <package dir>
  latchkey-keychain register-request <package dir> <version> [--private] [--team <team id>]
  latchkey-keychain grant-requests <keychain configuration.json> <keychain id>
`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  const positional = args.filter((arg, index) => !arg.startsWith("--") && args[index - 1] !== "--team");
  if (command === "digest" && positional.length === 1) {
    process.stdout.write(`${await packageDigest(positional[0] as string)}\n`);
    return 0;
  }
  if (command === "register-request" && positional.length === 2) {
    const team = args.indexOf("--team");
    const teamId = team === -1 ? undefined : args[team + 1];
    const request = await packageVersionRequest(positional[0] as string, positional[1] as string, {
      public: !args.includes("--private"),
      ...(teamId ? { teamId } : {}),
    });
    process.stdout.write(`${JSON.stringify(request)}\n`);
    return 0;
  }
  if (command === "grant-requests" && positional.length === 2) {
    const configuration = JSON.parse(await readFile(positional[0] as string, "utf8")) as unknown;
    for (const request of grantRequests(configuration, positional[1] as string)) {
      process.stdout.write(`${JSON.stringify(request)}\n`);
    }
    return 0;
  }
  process.stderr.write(USAGE);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`latchkey-keychain: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
