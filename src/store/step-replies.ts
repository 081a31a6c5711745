import { hash } from "node:crypto";
import { type Scope, StoreKeys } from "./keys.js";
import type { RedisClient } from "./redis-client.js";
import { type StoreCommands, withStoreCommands } from "./script-registry.js";
import { readStepRecord } from "./step-record.js";

/** Who marked a complaint resolved, when, and what they noted. */
export interface ReplyResolution {
  readonly at: number;
  readonly by: string;
  readonly note?: string;
}

/** One reply of a customer to a step: every reply is kept, numbered from 1. */
export interface StepReply {
  /** `<eventId>/<stepId>/<n>[@<shard>]` (replyId): how `followups resolve` names it. */
  readonly id: string;
  readonly eventId: string;
  readonly stepId: string;
  /** The shard the event lives in (FOLLOW_UP_SHARDS). */
  readonly shard: number;
  readonly n: number;
  readonly text: string;
  readonly receivedAt: number;
  /** How it came: sms, email or voice. */
  readonly channel: string;
  readonly resolved?: ReplyResolution;
}

interface StoredReply {
  t: string;
  at: number;
  c?: string;
  res?: { at: number; by: string; note?: string };
}

/** A reply as `add` filed it: appended now, or filed before under the same message (`repeat`). */
export interface FiledReply {
  readonly n: number;
  readonly repeat: boolean;
  readonly text: string;
  readonly receivedAt: number;
}

/**
 * What a reply is filed under in its event record: 12 characters of a digest of its message's id,
 * whatever the id's length (an email's Message-ID may be long), so the field stays short.
 */
function messageKey(messageId: string): string {
  return hash("sha256", messageId, "base64url").slice(0, 12);
}

/** Which reply of which step, of an event in which shard. */
export interface ReplyRef {
  readonly eventId: string;
  readonly stepId: string;
  readonly n: number;
  readonly shard: number;
}

/**
 * A reply's id: `<eventId>/<stepId>/<n>`, with `@<shard>` after it when the event is not in
 * shard 0. Ids are kept outside the shard (owners' pending alerts) and typed by operators, so they
 * name the shard; shard 0's (and every id given out before shards) are as they always were.
 */
export function replyId(ref: ReplyRef): string {
  const id = `${ref.eventId}/${ref.stepId}/${ref.n}`;
  return ref.shard === 0 ? id : `${id}@${ref.shard}`;
}

/** `<eventId>/<stepId>/<n>[@<shard>]` → its parts (shard 0 without `@`); undefined if not one. */
export function parseReplyId(id: string): ReplyRef | undefined {
  const match = /^(.+)\/([^/.\s]+\.[^/.\s]+)\/([1-9]\d{0,5})(?:@(\d{1,4}))?$/.exec(id);
  if (!match?.[1] || !match[2] || !match[3]) return undefined;
  return {
    eventId: match[1],
    stepId: match[2],
    n: Number(match[3]),
    shard: match[4] === undefined ? 0 : Number(match[4]),
  };
}

/**
 * Customers' replies to steps (SMS today; email and voice answers use the same place), kept on the
 * purchase's event record beside the step states, so they expire and are erased with it. Replies
 * are appended and never overwritten; a complaint can be marked resolved once.
 */
export class StepReplies {
  private readonly redis: RedisClient & StoreCommands;
  private readonly keys: StoreKeys;

  constructor(redis: RedisClient, scope: Scope) {
    this.redis = withStoreCommands(redis);
    this.keys = new StoreKeys(scope);
  }

  /**
   * Appends a reply; its number, or undefined when the step has no record (expired). A reply that
   * names the message it came in (`messageId`, the provider's id or our webhook receipt) is filed
   * under it in the same script: the same message again appends nothing and gets the reply filed
   * before (`repeat`, with its text and time as stored), so a delivery that failed half-way after
   * the append, and is retried, does what was left and files no second reply.
   */
  async add(
    eventId: string,
    stepId: string,
    reply: { text: string; receivedAt: number; channel: string },
    messageId?: string,
  ): Promise<FiledReply | undefined> {
    const stored: StoredReply = { t: reply.text, at: reply.receivedAt, c: reply.channel };
    const [n, earlier] = await this.redis.fuAddReply(
      this.keys.eventRecord(eventId),
      stepId,
      JSON.stringify(stored),
      messageId === undefined ? "" : messageKey(messageId),
    );
    if (n <= 0) return undefined;
    if (earlier === "") return { n, repeat: false, text: reply.text, receivedAt: reply.receivedAt };
    const filed = JSON.parse(earlier) as StoredReply;
    return { n, repeat: true, text: filed.t, receivedAt: filed.at };
  }

  /** Every reply to the purchase's steps, by step id, in the order received. */
  async ofEvent(eventId: string): Promise<Map<string, StepReply[]>> {
    const all = await this.redis.hgetall(this.keys.eventRecord(eventId));
    const replies = new Map<string, StepReply[]>();
    const add = (reply: StepReply) => {
      const list = replies.get(reply.stepId) ?? [];
      list.push(reply);
      replies.set(reply.stepId, list);
    };
    for (const [field, raw] of Object.entries(all)) {
      if (field.startsWith("y:")) {
        const at = field.lastIndexOf(":");
        add(this.read(eventId, field.slice(2, at), Number(field.slice(at + 1)), raw));
      } else if (field.startsWith("s:") && all[`yn:${field.slice(2)}`] === undefined) {
        // Kept the old way, inside the step record: reply 1.
        const legacy = readStepRecord(raw).reply;
        if (legacy) {
          const stepId = field.slice(2);
          const shard = this.keys.shard;
          add({
            id: replyId({ eventId, stepId, n: 1, shard }),
            eventId,
            stepId,
            shard,
            n: 1,
            text: legacy.text,
            receivedAt: legacy.receivedAt,
            channel: "sms",
          });
        }
      }
    }
    for (const list of replies.values()) list.sort((a, b) => a.n - b.n);
    return replies;
  }

  /** One reply; reply 1 of a step whose reply was kept the old way is found too. */
  async get(eventId: string, stepId: string, n: number): Promise<StepReply | undefined> {
    return (await this.ofEvent(eventId)).get(stepId)?.find((reply) => reply.n === n);
  }

  /**
   * Marks a reply resolved, once. `already` when it was resolved before (the first resolution
   * stays); undefined when there is no such reply.
   */
  async resolve(
    eventId: string,
    stepId: string,
    n: number,
    resolution: ReplyResolution,
  ): Promise<{ reply: StepReply; already: boolean } | undefined> {
    const [outcome, raw] = await this.redis.fuResolveReply(
      this.keys.eventRecord(eventId),
      stepId,
      n,
      JSON.stringify({
        at: resolution.at,
        by: resolution.by,
        ...(resolution.note && { note: resolution.note }),
      }),
    );
    if (outcome === 0) return undefined;
    return { reply: this.read(eventId, stepId, n, raw), already: outcome === 2 };
  }

  private read(eventId: string, stepId: string, n: number, raw: string): StepReply {
    return readReply({ eventId, stepId, n, shard: this.keys.shard }, raw);
  }
}

function readReply(ref: ReplyRef, raw: string): StepReply {
  const stored = JSON.parse(raw) as StoredReply;
  return {
    id: replyId(ref),
    ...ref,
    text: stored.t,
    receivedAt: stored.at,
    channel: stored.c ?? "sms",
    ...(stored.res && {
      resolved: {
        at: stored.res.at,
        by: stored.res.by,
        ...(stored.res.note !== undefined && { note: stored.res.note }),
      },
    }),
  };
}
