import { Redis } from "ioredis";
import { type Env, readEnv } from "../config/env.js";
import { CommandError } from "./io.js";

/**
 * The Redis of `REDIS_URL` for a one-shot command: connected once, no reconnecting, and a refusal
 * is one clear line (exit 1), not a stack trace. The caller disconnects it.
 */
export async function commandRedis(): Promise<{
  redis: Redis;
  prefix: string;
  horizonMs: number;
  env: Env;
}> {
  const env = readEnv(process.env);
  if (!env.ok) throw new CommandError(`invalid environment:\n${env.problems.join("\n")}`);
  const redis = new Redis(env.env.REDIS_URL, {
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  let failure: Error | undefined;
  redis.on("error", (error: Error) => {
    failure ??= error;
  });
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const reason = failure?.message ?? (error as Error).message;
    throw new CommandError(`cannot reach Redis at REDIS_URL: ${reason}`);
  }
  return {
    redis,
    prefix: env.env.QUEUE_PREFIX,
    horizonMs: env.env.PROMOTE_HORIZON_MS,
    env: env.env,
  };
}
