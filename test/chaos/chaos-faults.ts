// The faults of the chaos run. Each one breaks something, holds it broken for `holdMs` while the
// load goes on, and heals it (restart, or the partition lifted); it returns what it hit.
import type { ChildProcess } from "node:child_process";
import type { ChaosStack } from "./chaos-stack.js";

/** Where the key events live; its Raft leader is the "NATS leader" the run kills. */
const KEY_EVENTS_STREAM = "LATCHKEY_KEY_EVENTS";

/** One fault. */
export interface ChaosFault {
  readonly name: string;
  /** Breaks, waits `hold()`, heals; resolves with the target's name once healing has been started. */
  run(stack: ChaosStack, round: number, hold: () => Promise<void>): Promise<string>;
}

/** Every fault, in the order a round runs them. */
export const CHAOS_FAULTS: readonly ChaosFault[] = [
  {
    name: "kill-nats-node",
    async run(stack, round, hold) {
      const leader = await stack.nats.waitForLeader(KEY_EVENTS_STREAM);
      const others = stack.nats.nodes.filter((node) => node.name !== leader);
      const node = others[round % others.length] ?? others[0];
      if (node === undefined) throw new Error("no follower to kill");
      await node.server.kill();
      await hold();
      await node.server.restart();
      return node.name;
    },
  },
  {
    name: "kill-nats-leader",
    async run(stack, _round, hold) {
      const leader = await stack.nats.waitForLeader(KEY_EVENTS_STREAM);
      const node = stack.nats.nodes.find((candidate) => candidate.name === leader);
      if (node === undefined) throw new Error(`leader ${leader} is not a node of the cluster`);
      await node.server.kill();
      await hold();
      await node.server.restart();
      return `${node.name} (stream leader)`;
    },
  },
  {
    name: "kill-token-service",
    async run(stack, round, hold) {
      const replica = stack.replicas[round % stack.replicas.length];
      if (replica?.process === undefined) throw new Error("no token-service replica to kill");
      await sigkill(replica.process.child);
      await hold();
      await stack.startReplica(replica);
      return replica.name;
    },
  },
  {
    name: "restart-postgres",
    async run(stack, _round, hold) {
      await stack.postgres.crash();
      await hold();
      await stack.postgres.start();
      return "postgres";
    },
  },
  {
    name: "kill-sidecar",
    async run(stack, round, hold) {
      const sidecar = stack.sidecars[round % stack.sidecars.length];
      const process = sidecar?.process;
      if (sidecar === undefined || process === undefined) throw new Error("no sidecar to kill");
      sidecar.process = undefined;
      await sigkill(process.process.child);
      await process.stop();
      await hold();
      await stack.startSidecar(sidecar);
      return sidecar.name;
    },
  },
  {
    name: "partition-sidecar-nats",
    async run(stack, round, hold) {
      const sidecar = stack.sidecars[(round + 1) % stack.sidecars.length];
      if (sidecar === undefined) throw new Error("no sidecar to partition");
      sidecar.natsRelay.partition();
      await hold();
      sidecar.natsRelay.heal();
      return sidecar.name;
    },
  },
  {
    name: "partition-token-service-nats",
    async run(stack, _round, hold) {
      for (const replica of stack.replicas) replica.natsRelay.partition();
      await hold();
      for (const replica of stack.replicas) replica.natsRelay.heal();
      return stack.replicas.map((replica) => replica.name).join("+");
    },
  },
];

/** SIGKILL, and wait for the exit. */
async function sigkill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}
