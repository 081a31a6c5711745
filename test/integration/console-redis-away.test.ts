import { afterEach, expect, it } from "vitest";
import { ConsoleSessions } from "../../src/store/console-sessions.js";
import { type PipelineHarness, startPipeline } from "../support/pipeline-harness.js";
import { type RedisServer, startRedisServer } from "../support/redis-server.js";

/**
 * The console while Redis is away: every page, Bull Board's too, answers at once with the
 * console's own 503 page (Retry-After), not an error of Bull Board's with Redis's message.
 */

const TOKEN = "admin-token-0123456789";

let pipeline: PipelineHarness | undefined;
let server: RedisServer | undefined;
/** The port of the test's Redis while it is stopped: started again there before cleaning up. */
let downPort: number | undefined;
afterEach(async () => {
  if (downPort !== undefined) server = await startRedisServer({ port: downPort });
  downPort = undefined;
  await pipeline?.close();
  pipeline = undefined;
  await server?.stop();
  server = undefined;
});

it("answers every console page, the queues' too, with its 503 page while Redis is away", async () => {
  server = await startRedisServer({});
  pipeline = await startPipeline("console-redis-away", {
    redisUrl: server.url,
    env: { ADMIN_TOKENS: `dana:${TOKEN}` },
  });
  const p = pipeline;
  const cookie = await new ConsoleSessions(p.redis, p.prefix).start("dana", TOKEN);
  const base = p.worker?.httpAddress ?? "";
  const get = (path: string) =>
    fetch(`${base}${path}`, {
      headers: { cookie: `fu_console=${cookie}` },
      redirect: "manual",
      signal: AbortSignal.timeout(5_000),
    });
  expect((await get("/console/queues")).status).toBe(200);

  downPort = server.port;
  await server.stop();
  for (const path of ["/console", "/console/queues", "/console/queues/api/queues"]) {
    const response = await get(path);
    const body = await response.text();
    expect({
      path,
      status: response.status,
      retryAfter: response.headers.get("retry-after"),
    }).toEqual({ path, status: 503, retryAfter: "5" });
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(body).toContain("Redis is not answering right now. Try again in a few seconds.");
  }
});
