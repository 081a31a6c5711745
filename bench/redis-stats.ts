import type { Redis } from "ioredis";
import { StoreKeys } from "../src/store/keys.js";

/** Fields of one INFO section as numbers where they are numeric. */
async function info(redis: Redis, section: string): Promise<Map<string, string>> {
  const text = await redis.info(section);
  const fields = new Map<string, string>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

/** INFO memory used_memory: bytes the allocator holds for Redis's data and buffers. */
export async function usedMemory(redis: Redis): Promise<number> {
  return Number((await info(redis, "memory")).get("used_memory"));
}

/** CPU seconds (user + system) redis-server has used so far. */
export async function redisCpuSeconds(redis: Redis): Promise<number> {
  const cpu = await info(redis, "cpu");
  return Number(cpu.get("used_cpu_user")) + Number(cpu.get("used_cpu_sys"));
}

export interface CommandCount {
  readonly calls: number;
  readonly usec: number;
}

/** INFO commandstats (commands run inside Lua scripts are counted too). */
export async function commandStats(redis: Redis): Promise<Map<string, CommandCount>> {
  const stats = new Map<string, CommandCount>();
  for (const [name, value] of await info(redis, "commandstats")) {
    const calls = /calls=(\d+)/.exec(value)?.[1];
    const usec = /usec=(\d+)/.exec(value)?.[1];
    stats.set(name.replace(/^cmdstat_/, ""), { calls: Number(calls), usec: Number(usec) });
  }
  return stats;
}

/** Adds the change between two commandstats snapshots into `total`. */
export function addCommandDelta(
  total: Map<string, CommandCount>,
  before: Map<string, CommandCount>,
  after: Map<string, CommandCount>,
): void {
  for (const [name, now] of after) {
    const was = before.get(name) ?? { calls: 0, usec: 0 };
    const sum = total.get(name) ?? { calls: 0, usec: 0 };
    if (now.calls === was.calls) continue;
    total.set(name, {
      calls: sum.calls + now.calls - was.calls,
      usec: sum.usec + now.usec - was.usec,
    });
  }
}

/** Commands per unit of work (an event, a job), busiest first. */
export function perUnit(
  total: Map<string, CommandCount>,
  units: number,
  top = 12,
): { command: string; callsPerUnit: number; usecPerUnit: number }[] {
  return [...total]
    .map(([command, c]) => ({
      command,
      callsPerUnit: round(c.calls / units, 2),
      usecPerUnit: round(c.usec / units, 1),
    }))
    .sort((a, b) => b.usecPerUnit - a.usecPerUnit)
    .slice(0, top);
}

export interface KeyClass {
  keys: number;
  bytes: number;
}

const BULLMQ_KEYS = new Set([
  "wait",
  "paused",
  "meta",
  "id",
  "delayed",
  "events",
  "active",
  "completed",
  "failed",
  "marker",
  "stalled",
  "stalled-check",
  "prioritized",
  "pc",
  "limiter",
  "repeat",
]);
const QUEUES = new Set(["follow-ups", "purchase-events", "owner-reports"]);

/** What a key under the bench prefix is for: one class per BullMQ structure and per record kind. */
export function classifyKey(prefix: string, key: string): string {
  // The store's keys carry a hash tag (`{<prefix>}:fu:…`, `{<prefix>:<shard>}:fu:…`).
  const rest = key.startsWith("{")
    ? key.slice(key.indexOf("}:") + 2)
    : key.slice(prefix.length + 1);
  const [first = "", second = "", ...more] = rest.split(":");
  if (first === "fu") return `fu:${second} (our records)`;
  if (QUEUES.has(first)) {
    if (BULLMQ_KEYS.has(second) && more.length === 0) return `${first}:${second}`;
    if (more[0] === "lock") return `${first} job locks`;
    return first === "follow-ups"
      ? "follow-ups job hashes (one per follow-up)"
      : `${first} job hashes (kept jobs)`;
  }
  return "other";
}

/** MEMORY USAGE (exact: SAMPLES 0) of every key under `prefix`, summed per class. */
export async function memoryByClass(
  redis: Redis,
  prefix: string,
  classify: (key: string) => string = (key) => classifyKey(prefix, key),
): Promise<Record<string, KeyClass>> {
  const classes: Record<string, KeyClass> = {};
  for (const pattern of [`${prefix}:*`, ...new StoreKeys(prefix).patterns()])
    await measureInto(redis, pattern, classify, classes);
  return classes;
}

async function measureInto(
  redis: Redis,
  pattern: string,
  classify: (key: string) => string,
  classes: Record<string, KeyClass>,
): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.memory("USAGE", key, "SAMPLES", 0);
    const replies = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const bytes = Number(replies[i]?.[1] ?? 0);
      const name = classify(key);
      const entry = classes[name] ?? { keys: 0, bytes: 0 };
      entry.keys++;
      entry.bytes += bytes;
      classes[name] = entry;
    });
  } while (cursor !== "0");
}

/** Encoding and size of one key, and how its bytes split across its hash fields. */
export interface HashDissection {
  readonly key: string;
  readonly encoding: string;
  readonly bytes: number;
  readonly fields: Record<string, number>;
  /** Bytes the key would need without each group of fields (rebuilt under a scratch key). */
  readonly without: Record<string, number>;
  /** Bytes of the same fields in a compact listpack (hash-max-listpack-value raised to 4096). */
  readonly asListpack: number;
}

/**
 * Where one hash's bytes go: the hash is rebuilt under `scratch` without each group of fields and
 * measured again, so the cost of a group (e.g. the step fields) is a measured difference. A
 * rebuilt hash gets the encoding its remaining fields allow (listpack when all are small).
 */
export async function dissectHash(
  redis: Redis,
  key: string,
  scratch: string,
  groups: Record<string, (field: string) => boolean>,
): Promise<HashDissection> {
  const encoding = String(await redis.object("ENCODING", key));
  const bytes = Number(await redis.memory("USAGE", key, "SAMPLES", 0));
  // As buffers: a record's purchase fields are binary.
  const all = await redis.hgetallBuffer(key);
  const fields: Record<string, number> = {};
  for (const [field, value] of Object.entries(all))
    fields[field] = Buffer.byteLength(field) + value.length;
  const without: Record<string, number> = {};
  for (const [group, matches] of Object.entries(groups)) {
    await redis.del(scratch);
    const kept = Object.entries(all).filter(([field]) => !matches(field));
    if (kept.length === 0) {
      without[group] = 0;
      continue;
    }
    await redis.hset(scratch, Object.fromEntries(kept));
    without[group] = Number(await redis.memory("USAGE", scratch, "SAMPLES", 0));
  }
  await redis.del(scratch);
  const [, limit = "64"] = (await redis.config("GET", "hash-max-listpack-value")) as string[];
  await redis.config("SET", "hash-max-listpack-value", "4096");
  await redis.hset(scratch, all);
  const asListpack = Number(await redis.memory("USAGE", scratch, "SAMPLES", 0));
  await redis.del(scratch);
  await redis.config("SET", "hash-max-listpack-value", limit);
  return { key, encoding, bytes, fields, without, asListpack };
}

export function round(value: number, digits = 0): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
