import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { StoreKeys } from "../store/keys.js";
import type { RedisClient } from "../store/redis-client.js";
import { MoveRefused } from "./job-moves.js";

/**
 * One run at a time of the commands that move a deployment's data (`followups reshard`,
 * `followups migrate`): two runs at once would each rewrite what the other is moving (a schedule
 * bucket rewritten by one while the other appends to it loses steps; a copy still running after
 * the other finished writes old values over the new Redis's). A run holds a lease in Redis,
 * renewed while it runs; a run killed -9 cannot give it back, so it runs out on its own.
 */

/** How long a lease lasts without being renewed; it is renewed every third of that. */
export const MOVE_LEASE_MS = 15_000;

/** What the lease's key says of the run holding it. */
interface LeaseHolder {
  readonly token: string;
  readonly command: string;
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
}

/** A run's hold on the deployment's data; release it when the run ends, however it ends. */
export interface MoveLease {
  /** Throws when the lease ran out under this run (it stalled) and may be another's now. */
  check(): void;
  release(): Promise<void>;
  /** Stops renewing without giving the lease back, as a run killed -9 would (for tests). */
  abandon(): void;
}

/**
 * Takes the deployment's move lease for `command`, or refuses (MoveRefused) naming the run that
 * holds it, and how long until a hold left by a killed run runs out.
 */
export async function takeMoveLease(
  redis: RedisClient,
  prefix: string,
  command: string,
  options: {
    readonly leaseMs?: number;
    readonly now?: () => number;
    /** What the lease holds, as a refusal names it; default "this deployment". */
    readonly on?: string;
  } = {},
): Promise<MoveLease> {
  const leaseMs = options.leaseMs ?? MOVE_LEASE_MS;
  const now = options.now ?? Date.now;
  const key = new StoreKeys(prefix).moveLease();
  const holder: LeaseHolder = {
    token: randomUUID(),
    command,
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(now()).toISOString(),
  };
  const takenAt = performance.now();
  if ((await redis.set(key, JSON.stringify(holder), "PX", leaseMs, "NX")) !== "OK") {
    const [raw, left] = await Promise.all([redis.get(key), redis.pttl(key)]);
    const other = readHolder(raw);
    const who = other
      ? `${other.command} is running on ${options.on ?? "this deployment"} already (pid ${other.pid} on ${other.host}, started ${other.startedAt})`
      : `another run that moves a deployment's data holds ${options.on ?? "this deployment"}`;
    throw new MoveRefused(
      `${who}: wait for it to finish. If it was stopped (killed, or its machine went away), its hold runs out within ${Math.max(1, Math.ceil(left / 1000))} s: then run the command again to finish what it began`,
    );
  }
  let lost = false;
  // When the last renewal that found the lease ours was sent (a monotonic clock): the lease lasts
  // at least leaseMs from then. A run that finds more time gone (its event loop stalled, or its
  // renewals stuck behind its own big batches) may have lost it without any renewal noticing.
  const clock = () => performance.now();
  let heldFrom = takenAt;
  const expired = () => clock() - heldFrom >= leaseMs;
  const renew = async () => {
    const sentAt = clock();
    // Not renewed in time: another run may hold it by now, and a renewal would extend its lease.
    if (expired()) {
      lost = true;
      clearInterval(timer);
      return;
    }
    const raw = await redis.get(key);
    if (readHolder(raw)?.token !== holder.token) {
      lost = true;
      clearInterval(timer);
      return;
    }
    await redis.pexpire(key, leaseMs);
    heldFrom = sentAt;
  };
  const timer = setInterval(() => {
    // A Redis gone away fails the run's own commands too: nothing to add here.
    renew().catch(() => undefined);
  }, leaseMs / 3);
  timer.unref();
  return {
    check() {
      if (lost || expired())
        throw new MoveRefused(
          `this run of ${command} stalled for longer than its hold on the deployment lasts (${leaseMs / 1000} s), so another run may have begun: make sure none runs, then run the command again`,
        );
    },
    async release() {
      clearInterval(timer);
      // With Redis gone (what ended the run, often), the lease runs out on its own: the run's
      // own error is the one to tell.
      await redis
        .get(key)
        .then((raw) => (readHolder(raw)?.token === holder.token ? redis.del(key) : 0))
        .catch(() => undefined);
    },
    abandon() {
      clearInterval(timer);
    },
  };
}

/**
 * Runs `run` holding the move lease for `command`, released however it ends; the `onPart` it is
 * given checks the lease first at each part (a run that lost it stops there) and tells `onPart`.
 */
export async function holdingMoveLease<T>(
  redis: RedisClient,
  prefix: string,
  command: string,
  options: {
    readonly now?: () => number;
    readonly onPart?: (part: string) => void;
    /** What the lease holds, as a refusal names it (takeMoveLease). */
    readonly on?: string;
  },
  run: (onPart: (part: string) => void) => Promise<T>,
): Promise<T> {
  const lease = await takeMoveLease(redis, prefix, command, {
    ...(options.now && { now: options.now }),
    ...(options.on && { on: options.on }),
  });
  try {
    return await run((part) => {
      lease.check();
      options.onPart?.(part);
    });
  } finally {
    await lease.release();
  }
}

function readHolder(raw: string | null): LeaseHolder | undefined {
  if (raw === null) return undefined;
  try {
    return JSON.parse(raw) as LeaseHolder;
  } catch {
    return undefined;
  }
}
