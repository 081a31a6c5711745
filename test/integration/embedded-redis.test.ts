import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  ADMIN_TOKEN_FILE,
  defaultRedisUrl,
  EMBEDDED_URL_FILE,
  type EmbeddedRedis,
  embeddedAdminToken,
  redisAnswers,
  startEmbeddedRedis,
} from "../../src/embedded-redis.js";

let root: string | undefined;
let embedded: EmbeddedRedis | undefined;
afterEach(async () => {
  await embedded?.stop();
  embedded = undefined;
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

describe("the embedded Redis of the first five minutes", () => {
  it("starts redis-server from PATH under var/redis, tells other commands where, and stops", async () => {
    root = await mkdtemp(path.join(tmpdir(), "followups-embedded-"));
    embedded = await startEmbeddedRedis(root);
    expect(embedded.url).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    expect(await redisAnswers(embedded.url)).toBe(true);
    expect((await readFile(path.join(root, EMBEDDED_URL_FILE), "utf8")).trim()).toBe(embedded.url);
    // Commands without REDIS_URL find it.
    expect((await defaultRedisUrl(root)).url).toBe(embedded.url);
    // Its data lives in var/redis, with an append-only file.
    expect(embedded.dir).toBe(path.join(root, "var", "redis"));
    expect((await stat(path.join(embedded.dir, "appendonlydir"))).isDirectory()).toBe(true);

    const url = embedded.url;
    await embedded.stop();
    embedded = undefined;
    expect(await redisAnswers(url)).toBe(false);
    await expect(stat(path.join(root, EMBEDDED_URL_FILE))).rejects.toThrow();
    // Without it, commands fall back to the default address.
    expect((await defaultRedisUrl(root)).url).toBe("redis://127.0.0.1:6379");
  });

  it("keeps one console token for the deployment, readable by its owner only", async () => {
    root = await mkdtemp(path.join(tmpdir(), "followups-token-"));
    const token = await embeddedAdminToken(root);
    expect(token.length).toBeGreaterThanOrEqual(16);
    expect(await embeddedAdminToken(root)).toBe(token);
    expect((await stat(path.join(root, ADMIN_TOKEN_FILE))).mode & 0o777).toBe(0o600);
  });
});
