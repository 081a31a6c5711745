import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { Providers } from "./arrival-sink.js";

/**
 * The key prefix of the intake and memory runs: the worker's default QUEUE_PREFIX. Every such
 * run has a private redis-server of its own, so no prefix is needed to keep runs apart, and keys
 * are named as long as in a default deployment (a longer prefix costs bytes in every key name:
 * 32 B per key above 40 characters or so, where names cross an allocator size class).
 */
export const BENCH_PREFIX = "followups";

/** A scratch folder for one bench phase: config copy, outbox, worker logs. */
export interface Scratch {
  readonly dir: string;
  file(name: string): string;
  remove(): Promise<void>;
}

export async function scratchDir(label: string): Promise<Scratch> {
  const dir = await mkdtemp(path.join(tmpdir(), `followups-bench-${label}-`));
  return {
    dir,
    file: (name) => path.join(dir, name),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * Environment of a bench worker process: production settings (JSON logs at info, as shipped)
 * pointed at the private Redis, the bench's prefix and config, and the loopback providers.
 */
export function workerEnv(options: {
  redisUrl: string;
  prefix: string;
  configDir: string;
  outboxDir: string;
  providers: Providers;
  extra?: Record<string, string>;
}): Record<string, string> {
  return {
    NODE_ENV: "production",
    LOG_LEVEL: "info",
    LOG_FORMAT: "json",
    REDIS_URL: options.redisUrl,
    QUEUE_PREFIX: options.prefix,
    CONFIG_DIR: options.configDir,
    OUTBOX_DIR: options.outboxDir,
    HTTP_ENABLED: "false",
    PUBLIC_URL: "https://followups.bench.example",
    DISCOUNT_SECRET: "bench-discount-secret-0123456789",
    UNSUBSCRIBE_SECRET: "bench-unsubscribe-secret-0123456789",
    ...options.providers.env,
    ...options.extra,
  };
}
