import { Redis } from "ioredis";
import { startRedisCluster, waitUntilClusterReady } from "../test/support/redis-cluster.js";
import { startRedisServer } from "../test/support/redis-server.js";
import type { Providers } from "./arrival-sink.js";
import type { Scratch } from "./bench-env.js";
import { type BenchTarget, type ClusterScenario, clusterScenario } from "./cluster-bench.js";
import { sleep } from "./processes.js";
import { round } from "./redis-stats.js";

/**
 * `npm run bench -- --cluster-overhead`: where the Redis CPU a cluster spends beyond one Redis
 * goes. The cluster bench's workload on five setups, each started fresh and run in turn (the
 * rounds interleave them, so a machine speeding up or slowing down weighs on all alike):
 *
 * - one Redis (the cluster bench's baseline);
 * - one Redis with a replica: what feeding a replica costs a master;
 * - a one-node cluster holding every slot: what cluster mode costs a server, with no spread;
 * - three masters without replicas: what spreading the keys over three servers costs;
 * - three masters with a replica each (the cluster bench's cluster).
 */
export const OVERHEAD_SETUPS = [
  "one Redis",
  "one Redis + replica",
  "one-node cluster",
  "3 masters, no replicas",
  "3 masters + replicas",
] as const;
type Setup = (typeof OVERHEAD_SETUPS)[number];

interface Started {
  readonly target: BenchTarget;
  stop(): Promise<void>;
}

async function start(setup: Setup): Promise<Started> {
  switch (setup) {
    case "one Redis": {
      const server = await startRedisServer();
      return { target: { url: server.url, cluster: false }, stop: () => server.stop() };
    }
    case "one Redis + replica": {
      const master = await startRedisServer({ args: ["--repl-diskless-sync-delay", "0"] });
      const replica = await startRedisServer();
      const stop = async () => {
        await replica.stop();
        await master.stop();
      };
      try {
        await replicaOf(replica.port, master.port);
      } catch (error) {
        await stop();
        throw error;
      }
      return { target: { url: master.url, cluster: false }, stop };
    }
    case "one-node cluster": {
      // redis-cli --cluster create wants three masters: the node takes every slot itself, and
      // announces its loopback address (it has met no other node to learn it from).
      const node = await startRedisServer({
        args: ["--cluster-enabled", "yes", "--cluster-announce-ip", "127.0.0.1"],
      });
      const redis = new Redis(node.port, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        await redis.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
        await waitUntilClusterReady([node]);
      } catch (error) {
        await node.stop();
        throw error;
      } finally {
        redis.disconnect();
      }
      return { target: { url: node.url, cluster: true }, stop: () => node.stop() };
    }
    case "3 masters, no replicas":
    case "3 masters + replicas": {
      const cluster = await startRedisCluster({
        replicas: setup === "3 masters + replicas" ? 1 : 0,
      });
      return { target: { url: cluster.url, cluster: true }, stop: () => cluster.stop() };
    }
  }
}

/** Makes the server on `replicaPort` a replica of `masterPort` and waits until it has synced. */
async function replicaOf(replicaPort: number, masterPort: number): Promise<void> {
  const redis = new Redis(replicaPort, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.replicaof("127.0.0.1", masterPort);
    const deadline = Date.now() + 30_000;
    while (!(await redis.info("replication")).includes("master_link_status:up")) {
      if (Date.now() > deadline) throw new Error(`replica on ${replicaPort} never synced`);
      await sleep(100);
    }
  } finally {
    redis.disconnect();
  }
}

/** One setup's figures: Redis CPU summed over its masters and on the busiest, per event and send. */
export interface OverheadRow {
  readonly setup: Setup;
  readonly round: number;
  readonly redisMsPerEvent: number;
  readonly busiestMsPerEvent: number;
  readonly redisMsPerSend: number;
  readonly busiestMsPerSend: number;
  readonly workerMsPerEvent: number;
}

function rowOf(setup: Setup, roundNumber: number, run: ClusterScenario): OverheadRow {
  const sum = (values: readonly number[]) =>
    round(
      values.reduce((a, b) => a + b, 0),
      3,
    );
  return {
    setup,
    round: roundNumber,
    redisMsPerEvent: sum(run.intake.redisCpuMsPerEventByMaster),
    busiestMsPerEvent: run.intake.redisCpuMsPerEventByMaster[0] ?? 0,
    redisMsPerSend: sum(run.send.redisCpuMsPerSendByMaster),
    busiestMsPerSend: run.send.redisCpuMsPerSendByMaster[0] ?? 0,
    workerMsPerEvent: run.intake.workerCpuMsPerEvent,
  };
}

/** Every setup, `rounds` times in turn, with the cluster bench's workload. */
export async function clusterOverhead(options: {
  rounds: number;
  events: number;
  sends: number;
  providers: Providers;
  scratch: Scratch;
  log: (line: string) => void;
}): Promise<OverheadRow[]> {
  const rows: OverheadRow[] = [];
  for (let roundNumber = 1; roundNumber <= options.rounds; roundNumber++) {
    for (const setup of OVERHEAD_SETUPS) {
      options.log(`round ${roundNumber}: ${setup}…`);
      const started = await start(setup);
      try {
        const run = await clusterScenario({
          label: setup,
          target: started.target,
          events: options.events,
          sends: options.sends,
          providers: options.providers,
          scratch: options.scratch,
          log: options.log,
        });
        rows.push(rowOf(setup, roundNumber, run));
      } finally {
        await started.stop();
      }
    }
  }
  return rows;
}

/** Each setup's figures against one Redis's of the same round. */
export function overheadRatios(rows: readonly OverheadRow[]) {
  return rows.map((row) => {
    const base = rows.find((r) => r.round === row.round && r.setup === "one Redis");
    const ratio = (a: number, b: number | undefined) => (b ? round(a / b, 2) : undefined);
    return {
      round: row.round,
      setup: row.setup,
      "Redis ms/event (sum)": row.redisMsPerEvent,
      "× one Redis": ratio(row.redisMsPerEvent, base?.redisMsPerEvent),
      "busiest ms/event": row.busiestMsPerEvent,
      "Redis ms/send (sum)": row.redisMsPerSend,
      "× one Redis ": ratio(row.redisMsPerSend, base?.redisMsPerSend),
      "busiest ms/send": row.busiestMsPerSend,
    };
  });
}
