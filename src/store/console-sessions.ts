import { createHash, randomBytes } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** How long a console session lasts without being used. */
export const CONSOLE_SESSION_MS = 8 * 3600 * 1000;

/** A signed-in operator: their name, and which of their tokens they signed in with. */
export interface ConsoleSession {
  readonly name: string;
  /** tokenTag of the token signed in with; absent for sessions of versions before December 2026. */
  readonly tokenTag?: string;
}

/**
 * Names a token without holding it: 22 characters of its SHA-256 (admin tokens are long random
 * strings, so this leads nowhere back to the token).
 */
export function tokenTag(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("base64url").slice(0, 22);
}

/**
 * Signed-in console users: a random session id in an httpOnly cookie, and in Redis (named by the
 * id's SHA-256, so a Redis dump holds no usable id) the operator's name and the tag of the token
 * they signed in with, so that a session is refused once its token is taken out of ADMIN_TOKENS
 * (and lapses eight hours later). A session lapses after eight hours without accepted use and
 * ends at sign-out; every worker process shares them.
 */
export class ConsoleSessions {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /** Starts a session for the operator who signed in with `token`; returns its id for the cookie. */
  async start(name: string, token: string): Promise<string> {
    const id = randomBytes(32).toString("base64url");
    await this.redis.set(this.key(id), `${name}\n${tokenTag(token)}`, "PX", CONSOLE_SESSION_MS);
    return id;
  }

  /** The operator of a live session, or undefined (keepAlive once it is accepted). */
  async sessionOf(id: string | undefined): Promise<ConsoleSession | undefined> {
    if (!id || id.length > 100) return undefined;
    const value = await this.redis.get(this.key(id));
    if (value === null) return undefined;
    const cut = value.lastIndexOf("\n");
    return cut < 0
      ? { name: value }
      : { name: value.slice(0, cut), tokenTag: value.slice(cut + 1) };
  }

  /** Another eight hours from now, for a session that was used and accepted. */
  async keepAlive(id: string | undefined): Promise<void> {
    if (id && id.length <= 100) await this.redis.pexpire(this.key(id), CONSOLE_SESSION_MS);
  }

  async end(id: string | undefined): Promise<void> {
    if (id && id.length <= 100) await this.redis.del(this.key(id));
  }

  private key(id: string): string {
    return this.keys.consoleSession(createHash("sha256").update(id).digest("base64url"));
  }
}
