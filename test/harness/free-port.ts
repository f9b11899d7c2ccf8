import { createServer } from "node:net";

/**
 * Asks the kernel for a free TCP port on 127.0.0.1 by binding port 0 and releasing it. Another process
 * could take the port before the caller binds it; on a test machine that window is small enough.
 */
export function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("could not read the bound port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
