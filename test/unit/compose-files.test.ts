import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";

/**
 * The compose files are examples operators copy: the worker's state on disk must be on volumes
 * there as the README asks ("keep it on a private, persistent volume"), on one Redis and on a
 * cluster alike.
 */

const dockerfileEnv = (name: string): string | undefined =>
  new RegExp(`${name}=(\\S+)`).exec(readFileSync("Dockerfile", "utf8"))?.[1];

interface ComposeService {
  readonly volumes?: readonly string[];
  readonly environment?: Record<string, string>;
}

const workerOf = (file: string): ComposeService =>
  (parse(readFileSync(file, "utf8")) as { services: Record<string, ComposeService> }).services
    .worker as ComposeService;

describe.each(["compose.yaml", "compose.cluster.yaml"])("%s", (file) => {
  it("keeps the worker's outbox and webhook spool on volumes", () => {
    const worker = workerOf(file);
    const mounted = (worker.volumes ?? []).map((volume) => volume.split(":")[1]);
    const spool = worker.environment?.WEBHOOK_SPOOL_DIR ?? dockerfileEnv("WEBHOOK_SPOOL_DIR");
    const outbox = worker.environment?.OUTBOX_DIR ?? dockerfileEnv("OUTBOX_DIR");
    expect(spool).toBe("/app/var/spool/webhooks");
    expect(mounted).toContain(spool);
    expect(mounted).toContain(outbox);
  });
});
