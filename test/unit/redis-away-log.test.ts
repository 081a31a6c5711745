import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { logRedisAway, reportConnectionErrors } from "../../src/queue/redis-away-log.js";
import { createRedisClient } from "../../src/store/redis-client.js";

/** A refused connection, as ioredis reports it on each reconnect attempt. */
function refused(): Error {
  return Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6390"), {
    code: "ECONNREFUSED",
    errno: -111,
    syscall: "connect",
  });
}

function subject() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: "info",
    pretty: false,
    destination: { write: (line: string) => void lines.push(JSON.parse(line)) },
  });
  let clock = Date.parse("2026-12-06T12:00:00Z");
  const away = logRedisAway({ logger, now: () => clock });
  return {
    away,
    lines,
    messages: () => lines.map((line) => line.msg),
    advance(ms: number) {
      clock += ms;
    },
  };
}

describe("the log of a Redis outage", () => {
  it("logs the first connection error, sums up the rest once a minute, and logs the end", () => {
    const s = subject();
    // Five connections retrying every half second or so, for two and a half minutes.
    for (let tick = 0; tick < 300; tick++) {
      for (const queue of ["purchase-events", "follow-ups", "owner-reports", "owner-alerts"])
        expect(s.away.handle(refused(), { queue })).toBe(true);
      expect(s.away.handle(refused(), { worker: "intake" })).toBe(true);
      s.advance(500);
    }
    s.away.back();
    expect(s.messages()).toEqual([
      "Redis connection lost: the worker tries again until Redis is back, and sums up the connection errors meanwhile once a minute",
      "Redis still unreachable",
      "Redis still unreachable",
      "Redis reachable again",
    ]);
    const [lost, first, second, back] = s.lines;
    expect(lost).toMatchObject({
      level: 50,
      queue: "purchase-events",
      err: { code: "ECONNREFUSED" },
    });
    expect(first).toMatchObject({ level: 50, awayMs: 60_000, errors: 600 });
    expect(second).toMatchObject({ level: 50, awayMs: 120_000, errors: 600 });
    expect(back).toMatchObject({ level: 30, awayMs: 150_000, errors: 1_500 });
  });

  it("leaves every other error to the caller", () => {
    const s = subject();
    const replies = [
      new Error("OOM command not allowed when used memory > 'maxmemory'."),
      new Error("ERR unknown command 'FOO'"),
      new Error("Missing lock for job 42. moveToFinished"),
      "a string",
    ];
    for (const reply of replies) expect(s.away.handle(reply, { worker: "intake" })).toBe(false);
    expect(s.lines).toEqual([]);
  });

  it("takes a connection error a minute after the last one as a new outage, logged in full", () => {
    const s = subject();
    expect(s.away.handle(refused(), { worker: "intake" })).toBe(true);
    // One connection broke alone and came back: nothing said Redis was ready again.
    s.advance(60_000);
    expect(s.away.handle(refused(), { worker: "delivery 0" })).toBe(true);
    expect(s.lines.map((line) => [line.msg, line.worker])).toEqual([
      [expect.stringMatching(/^Redis connection lost/), "intake"],
      [expect.stringMatching(/^Redis connection lost/), "delivery 0"],
    ]);
  });

  it("says nothing when Redis is ready without having been away", () => {
    const s = subject();
    s.away.back();
    expect(s.away.handle(refused(), { worker: "intake" })).toBe(true);
    s.away.back();
    s.away.back();
    expect(s.messages()).toEqual([
      expect.stringMatching(/^Redis connection lost/),
      "Redis reachable again",
    ]);
  });

  it("counts ioredis's own words for a connection that is gone", () => {
    const s = subject();
    const gone = [
      new Error("Connection is closed."),
      new Error("Stream isn't writeable and enableOfflineQueue options is false"),
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      Object.assign(new Error("Reached the max retries per request limit (which is 1)."), {
        name: "MaxRetriesPerRequestError",
      }),
    ];
    for (const error of gone) expect(s.away.handle(error, { worker: "intake" })).toBe(true);
    expect(s.lines).toHaveLength(1);
  });
});

describe("a connection's own error listener", () => {
  it("logs a connection refused on every reconnect attempt once, and leaves nothing to ioredis's console output", async () => {
    const s = subject();
    // Nothing listens on port 1 of the loopback address: each attempt is refused at once.
    const redis = createRedisClient("redis://127.0.0.1:1", false, {
      lazyConnect: true,
      maxRetriesPerRequest: null,
      retryStrategy: () => 5,
    });
    reportConnectionErrors({
      redis,
      away: s.away,
      logger: createLogger({ level: "silent", pretty: false }),
      now: Date.now,
      source: { connection: "main" },
    });
    // Only ours listens: ioredis would print each error itself if nobody did.
    expect(redis.listenerCount("error")).toBe(1);
    let attempts = 0;
    const tenAttempts = new Promise<void>((resolve) => {
      redis.on("error", () => {
        attempts += 1;
        if (attempts === 10) resolve();
      });
    });
    redis.connect().catch(() => {});
    await tenAttempts;
    redis.disconnect();
    expect(s.messages()).toEqual([
      "Redis connection lost: the worker tries again until Redis is back, and sums up the connection errors meanwhile once a minute",
    ]);
    expect(s.lines[0]).toMatchObject({ connection: "main", err: { code: "ECONNREFUSED" } });
  });
});
