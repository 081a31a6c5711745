import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { type RedisServer, startRedisServer } from "./redis-server.js";

const run = promisify(execFile);
const READY_TIMEOUT_MS = 30_000;

/** A private Redis Cluster on loopback: three masters, with a replica each unless asked not to. */
export interface RedisCluster {
  /** The nodes as REDIS_URL takes them with REDIS_CLUSTER=true: comma-separated URLs. */
  readonly url: string;
  readonly nodes: readonly RedisServer[];
  stop(): Promise<void>;
}

/**
 * Starts six `redis-server --cluster-enabled yes` processes on free loopback ports, joins them with
 * `redis-cli --cluster create … --cluster-replicas 1`, and waits until every node reports the
 * cluster ok and every replica's link to its master is up (a replica that never synced refuses
 * to fail over). `replicas: 0` starts the three masters alone (the bench's overhead comparison).
 */
export async function startRedisCluster(options: { replicas?: 0 | 1 } = {}): Promise<RedisCluster> {
  const replicas = options.replicas ?? 1;
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < 3 * (1 + replicas); i++) {
      nodes.push(
        await startRedisServer({
          args: [
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            "--repl-diskless-sync-delay",
            "0",
          ],
        }),
      );
    }
    await run("redis-cli", [
      "--cluster",
      "create",
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]);
    await waitUntilClusterReady(nodes);
  } catch (error) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw error;
  }
  return {
    url: nodes.map((node) => node.url).join(","),
    nodes,
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}

/** Waits until every node reports the cluster ok and every replica's link to its master is up. */
export async function waitUntilClusterReady(nodes: readonly RedisServer[]): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let waitingFor = "";
  while (Date.now() < deadline) {
    waitingFor = "";
    for (const node of nodes) {
      const redis = new Redis(node.port, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        const cluster = await redis.cluster("INFO");
        const replication = await redis.info("replication");
        if (!/cluster_state:ok/.test(String(cluster))) waitingFor = `cluster state on ${node.port}`;
        else if (/role:slave/.test(replication) && !/master_link_status:up/.test(replication))
          waitingFor = `the replica on ${node.port} to sync`;
      } finally {
        redis.disconnect();
      }
      if (waitingFor) break;
    }
    if (!waitingFor) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `Redis Cluster not ready after ${READY_TIMEOUT_MS} ms: waiting for ${waitingFor}`,
  );
}

/** A connection to one node of a cluster, not following redirections. */
export async function clusterNode(port: number): Promise<Redis> {
  const redis = new Redis(port, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  return redis;
}

/** The port of the master serving a slot, or a key's slot, asked of any live node. */
export async function masterOf(anyPort: number, slotOrKey: number | string): Promise<number> {
  const master = await masterServing(anyPort, slotOrKey);
  if (master === undefined) throw new Error(`no master serves ${slotOrKey}`);
  return master;
}

/**
 * As masterOf, but undefined while no master serves the slot: during a failover, a node's
 * CLUSTER SLOTS leaves out the slots of a master it has marked failed until a replica takes over.
 */
export async function masterServing(
  anyPort: number,
  slotOrKey: number | string,
): Promise<number | undefined> {
  const redis = await clusterNode(anyPort);
  try {
    const slot =
      typeof slotOrKey === "number" ? slotOrKey : Number(await redis.cluster("KEYSLOT", slotOrKey));
    const ranges = await redis.cluster("SLOTS");
    return ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]?.[1];
  } finally {
    redis.disconnect();
  }
}
