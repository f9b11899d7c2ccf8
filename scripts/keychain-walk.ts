// The keychain walk `npm start` prints (seed 002): a keychain, a secret, the example package
// (packages/keychain/examples/stripe-customers) registered from its instant.package.json, a grant
// pinned to its digest, ResolveSecrets as the package's runtime calls it, and the same call with
// another digest, refused. test/keychain/start-walk.test.ts runs these lines.

/** Where the lines point. */
export interface KeychainWalkOptions {
  /** The `buf curl` command prefix (protocol flags included). */
  readonly buf: string;
  /** `http://127.0.0.1:<native gRPC port>/latchkey.v1` */
  readonly api: string;
}

/** The example package, relative to the repository root. */
export const EXAMPLE_PACKAGE = "packages/keychain/examples/stripe-customers";

/**
 * The walk as shell lines. `$ROOT` is the root key; `<team id>` and `<keychain id>` are pasted
 * from earlier answers, `$KEYCHAIN` exported from CreateKeychain's `secret`.
 *
 * @example
 * ```ts
 * process.stdout.write(keychainWalk({ buf: "npx buf curl --protocol grpc --http2-prior-knowledge", api }).join("\n"));
 * ```
 */
export function keychainWalk(options: KeychainWalkOptions): string[] {
  const { buf, api } = options;
  const kc = `${api}.KeychainService`;
  const asRoot = `${buf} -H "Authorization: Bearer $ROOT"`;
  const asKeychain = `${buf} -H "Authorization: Bearer $KEYCHAIN"`;
  const presented = (sha: string) =>
    `-d "{\\"packageName\\":\\"@user/package\\",\\"version\\":\\"v-20250101\\",\\"sha256\\":\\"${sha}\\"}"`;
  return [
    `${asRoot} -d '{"teamId":"<team id>","name":"my agent"}' ${kc}/CreateKeychain`,
    `export KEYCHAIN='<secret from CreateKeychain>'`,
    `${asRoot} -d '{"keychainId":"<keychain id>","name":"STRIPE_SECRET_KEY","value":"sk_test_4eC39HqLyjWDarjtT1zdp7dc"}' ${kc}/PutSecret`,
    `npm run keychain --silent -- register-request ${EXAMPLE_PACKAGE} v-20250101 --team <team id> | ${asRoot} -d @- ${kc}/RegisterPackageVersion`,
    `export SHA=$(npm run keychain --silent -- digest ${EXAMPLE_PACKAGE})`,
    `${asRoot} -d "{\\"keychainId\\":\\"<keychain id>\\",\\"packageName\\":\\"@user/package\\",\\"version\\":\\"v-20250101\\",\\"sha256\\":\\"$SHA\\",\\"names\\":[\\"STRIPE_SECRET_KEY\\"]}" ${kc}/GrantPackage`,
    `${asKeychain} ${presented("$SHA")} ${kc}/ResolveSecrets`,
    "# the package's contents changed (another digest): refused, and audited",
    `${asKeychain} ${presented("$(echo hijacked | sha256sum | cut -c1-64)")} ${kc}/ResolveSecrets`,
  ];
}
