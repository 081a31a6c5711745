import { createHash, randomBytes } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** How long a console session lasts without being used. */
export const CONSOLE_SESSION_MS = 8 * 3600 * 1000;

/**
 * Signed-in console users: a random session id in an httpOnly cookie, and in Redis (named by the
 * id's SHA-256, so a Redis dump holds no usable id) the operator's name. A session lapses after
 * eight hours without use and ends at sign-out; every worker process shares them.
 */
export class ConsoleSessions {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /** Starts a session for the operator; returns its id for the cookie. */
  async start(name: string): Promise<string> {
    const id = randomBytes(32).toString("base64url");
    await this.redis.set(this.key(id), name, "PX", CONSOLE_SESSION_MS);
    return id;
  }

  /** The operator of a live session (and keeps it alive), or undefined. */
  async operatorOf(id: string | undefined): Promise<string | undefined> {
    if (!id || id.length > 100) return undefined;
    const key = this.key(id);
    const name = await this.redis.get(key);
    if (name !== null) await this.redis.pexpire(key, CONSOLE_SESSION_MS);
    return name ?? undefined;
  }

  async end(id: string | undefined): Promise<void> {
    if (id && id.length <= 100) await this.redis.del(this.key(id));
  }

  private key(id: string): string {
    return this.keys.consoleSession(createHash("sha256").update(id).digest("base64url"));
  }
}
