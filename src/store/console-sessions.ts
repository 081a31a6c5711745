import { createHash, randomBytes } from "node:crypto";
import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";

/** How long a console session lasts without being used. */
export const CONSOLE_SESSION_MS = 8 * 3600 * 1000;

/** How long a console session lasts at most from its sign-in, however often it is used. */
export const CONSOLE_SESSION_MAX_MS = 12 * 3600 * 1000;

/** A signed-in operator: their name, which of their tokens they signed in with, and when. */
export interface ConsoleSession {
  readonly name: string;
  /** tokenTag of the token signed in with. */
  readonly tokenTag: string;
  /** When they signed in (epoch ms). */
  readonly startedAt: number;
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
 * id's SHA-256, so a Redis dump holds no usable id) the operator's name, the tag of the token
 * they signed in with and when, so that a session is refused once its token is taken out of
 * ADMIN_TOKENS. A session lapses after eight hours without accepted use, twelve hours after its
 * sign-in however it is used, and at sign-out; every worker process shares them.
 */
export class ConsoleSessions {
  private readonly keys: StoreKeys;

  constructor(
    private readonly redis: RedisClient,
    prefix: string,
    /** The time (epoch ms); injectable so that a test can move past a session's end. */
    private readonly now: () => number = Date.now,
  ) {
    this.keys = new StoreKeys(prefix);
  }

  /** Starts a session for the operator who signed in with `token`; returns its id for the cookie. */
  async start(name: string, token: string): Promise<string> {
    const id = randomBytes(32).toString("base64url");
    const value = `${name}\n${tokenTag(token)}\n${this.now()}`;
    await this.redis.set(this.key(id), value, "PX", CONSOLE_SESSION_MS);
    return id;
  }

  /**
   * The operator of a live session, or undefined (keepAlive once it is accepted). A session of a
   * version before 5 December 2026 (no sign-in time, so no end) is not one: signed in again.
   */
  async sessionOf(id: string | undefined): Promise<ConsoleSession | undefined> {
    if (!id || id.length > 100) return undefined;
    const value = await this.redis.get(this.key(id));
    if (value === null) return undefined;
    const session = parseSession(value);
    if (session === undefined || sessionLeft(session, this.now()) <= 0) return undefined;
    return session;
  }

  /** Another eight hours from now for a session that was used and accepted, up to its end. */
  async keepAlive(id: string | undefined, session: ConsoleSession): Promise<void> {
    if (!id || id.length > 100) return;
    const left = Math.min(CONSOLE_SESSION_MS, sessionLeft(session, this.now()));
    if (left > 0) await this.redis.pexpire(this.key(id), left);
  }

  /** Where @fastify/rate-limit counts sign-in attempts (its `redis` and `nameSpace` options). */
  signInCounts(): { redis: RedisClient; nameSpace: string } {
    return { redis: this.redis, nameSpace: this.keys.consoleSignIns() };
  }

  async end(id: string | undefined): Promise<void> {
    if (id && id.length <= 100) await this.redis.del(this.key(id));
  }

  private key(id: string): string {
    return this.keys.consoleSession(createHash("sha256").update(id).digest("base64url"));
  }
}

/** How long a session has left before its sign-in is CONSOLE_SESSION_MAX_MS old (ms). */
function sessionLeft(session: ConsoleSession, now: number): number {
  return session.startedAt + CONSOLE_SESSION_MAX_MS - now;
}

/** A stored session (`<name>\n<token tag>\n<sign-in ms>`), or undefined in an older form. */
function parseSession(value: string): ConsoleSession | undefined {
  const last = value.lastIndexOf("\n");
  const middle = value.lastIndexOf("\n", last - 1);
  if (middle < 0 || middle === last) return undefined;
  const startedAt = value.slice(last + 1);
  if (!/^\d{1,16}$/.test(startedAt)) return undefined;
  return {
    name: value.slice(0, middle),
    tokenTag: value.slice(middle + 1, last),
    startedAt: Number(startedAt),
  };
}
