import { StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";

/**
 * Rules generations: a number per rules version, in the order workers first loaded them, shared
 * through Redis. Each step remembers the generation it was planned with, so re-planning only ever
 * moves steps forward to newer rules, whichever worker of a rolling deploy gets there first.
 */
export class RulesGenerations {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, prefix: string) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(prefix);
  }

  /** The generation of a rules version (numbered on first sight), and the latest one. */
  async generationOf(version: string): Promise<{ generation: number; latest: number }> {
    const [generation, latest] = await this.redis.fuRulesGeneration(
      this.keys.rulesGenerations(),
      version,
    );
    return { generation, latest };
  }

  /**
   * What generation a rules version has, without numbering it (a preview must not): undefined
   * for a version no worker has loaded yet; and the latest generation (0 before any).
   */
  async known(version: string): Promise<{ generation?: number; latest: number }> {
    const [generation, latest] = await this.redis.hmget(
      this.keys.rulesGenerations(),
      `v:${version}`,
      "n",
    );
    return {
      ...(generation !== null && { generation: Number(generation) }),
      latest: Number(latest ?? 0),
    };
  }

  /** Whether a full re-planning walk of a shard's schedule under `generation` has completed. */
  async walked(generation: number, shard = 0): Promise<boolean> {
    const field = walkField(generation, shard);
    return (await this.redis.hexists(this.keys.rulesGenerations(), field)) === 1;
  }

  /** Records that a full re-planning walk of a shard's schedule under `generation` completed. */
  async markWalked(generation: number, shard = 0): Promise<void> {
    await this.redis.hset(this.keys.rulesGenerations(), walkField(generation, shard), Date.now());
  }
}

/** The field marking a walk: shard 0's keeps the name it had before shards. */
function walkField(generation: number, shard: number): string {
  return shard === 0 ? `w:${generation}` : `w:${generation}:${shard}`;
}
