import { describe, expect, it } from "vitest";
import { shardOfQueuePrefix } from "../../src/console/console-routes.js";
import { FOLLOW_UPS_QUEUE, queuePrefix } from "../../src/queue/names.js";

describe("the console's names for each shard's follow-ups queue", () => {
  it("reads the shard from every shard's queue prefix, spread tags included", () => {
    for (const cluster of [false, true]) {
      const prefixes = Array.from({ length: 16 }, (_, shard) =>
        queuePrefix("followups", FOLLOW_UPS_QUEUE, cluster, shard, 16),
      );
      // Some of the sixteen tags carry a suffix that spreads their slots (`{followups:3.7}`).
      expect(prefixes.some((prefix) => /\.\d+\}$/.test(prefix))).toBe(true);
      expect(prefixes.map(shardOfQueuePrefix)).toEqual(prefixes.map((_, shard) => shard));
    }
    expect(shardOfQueuePrefix("followups")).toBe(0);
    expect(shardOfQueuePrefix("{followups}")).toBeUndefined();
    expect(shardOfQueuePrefix(undefined)).toBeUndefined();
  });
});
