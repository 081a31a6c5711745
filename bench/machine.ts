import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { Redis } from "ioredis";
import { startRedisServer } from "../test/support/redis-server.js";
import { workerBuild } from "./processes.js";
import { round } from "./redis-stats.js";

/** Share of the machine's CPU that other processes kept busy over one second (they skew every figure). */
async function cpuBusyShare(): Promise<number> {
  const sample = async () => {
    const [cpu = ""] = (await readFile("/proc/stat", "utf8").catch(() => "")).split("\n");
    const ticks = cpu.split(/\s+/).slice(1).map(Number);
    const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
    return { idle, total: ticks.reduce((a, b) => a + b, 0) };
  };
  const before = await sample();
  const ownBefore = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const own = process.cpuUsage(ownBefore);
  const after = await sample();
  const total = after.total - before.total;
  if (total <= 0) return 0;
  // /proc/stat counts in ticks of 10 ms across all CPUs; leave out the bench's own start-up work.
  const ownTicks = (own.user + own.system) / 10_000;
  return round(Math.max(0, 1 - (after.idle - before.idle) / total - ownTicks / total), 2);
}

/** The commit the bench measures, and whether src has uncommitted changes. */
export function gitState(): { commit: string; dirty: boolean } {
  try {
    const commit = execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      encoding: "utf8",
    }).trim();
    const status = execFileSync("git", ["status", "--porcelain", "--", "src"], {
      encoding: "utf8",
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch {
    return { commit: "?", dirty: false };
  }
}

/** What the figures were measured on, recorded with them. */
export async function machine() {
  const busy = await cpuBusyShare();
  const server = await startRedisServer();
  const redis = new Redis(server.url);
  const version = /redis_version:(\S+)/.exec(await redis.info("server"))?.[1] ?? "?";
  await redis.quit();
  await server.stop();
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? "?",
    memoryGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    redis: version,
    redisSettings: "private redis-server, no persistence (--save '' --appendonly no)",
    cpuBusyBeforeStart: busy,
    loadAverage: os.loadavg().map((n) => round(n, 2)),
    git: gitState(),
    /** tsc: the workers ran compiled, as `npm start` runs them; tsx: through tsx (BENCH_TSX=1). */
    workers: workerBuild(),
  };
}
