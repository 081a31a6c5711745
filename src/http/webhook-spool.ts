import { createHash, randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, readFile, rename, rm, stat, utimes } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { CHANNELS } from "../domain/events.js";
import { inboundSmsKeyword } from "../domain/sms-keywords.js";
import type { UnsubscribeTarget } from "../domain/unsubscribe-token.js";
import { meansStop } from "../domain/voice-call.js";

/** At most this many webhooks wait on disk; beyond, the route answers 503 as before. */
export const MAX_SPOOLED_WEBHOOKS = 10_000;
/** Where a spooled file that cannot be handled is moved, inside the spool folder. */
export const SPOOL_FAILED_DIR = "failed";
/**
 * A temporary file (`.<name>.tmp`) older than this was left by a process that died while writing
 * it: a write takes milliseconds, so it is removed.
 */
export const STALE_TEMPORARY_MS = 10 * 60_000;
/**
 * How long a webhook moved aside to `failed/` is kept for an operator to act on, from when it was
 * moved there: as failed jobs are (30 days). An opt-out is kept longer: see removeExpiredFailed.
 */
export const FAILED_WEBHOOK_MAX_AGE_MS = 30 * 86_400_000;

/** An inbound SMS whose signature was checked, kept on disk until Redis can take it. */
export interface SpooledInboundSms {
  /** When the webhook arrived (ms since the epoch): the opt-out's or the reply's time. */
  readonly receivedAt: number;
  readonly message: {
    readonly from: string;
    readonly body: string;
    readonly messageSid: string;
    readonly media?: number;
    readonly optOutType?: string;
  };
}

/**
 * The answer to a voice call's question (the gather webhook) whose signature was checked: what
 * VoiceCalls.gathered reads, and the number Twilio called (`To`), by which a 9 can still opt the
 * number out when the call's record is gone by the time Redis is back.
 */
export interface SpooledVoiceGather {
  /** When the webhook arrived (ms since the epoch): the opt-out's time. */
  readonly receivedAt: number;
  readonly gather: {
    readonly followUpId: string;
    readonly callSid: string;
    readonly answeredBy?: string;
    readonly digits?: string;
    readonly speech?: string;
    readonly to?: string;
  };
}

/**
 * A message's status callback (delivered, undelivered with its code …) whose signature was
 * checked: what CustomerFeedback.smsStatus reads.
 */
export interface SpooledSmsStatus {
  /** When the webhook arrived (ms since the epoch): the delivery outcome's time. */
  readonly receivedAt: number;
  readonly smsStatus: {
    readonly messageSid: string;
    readonly status: string;
    readonly errorCode?: number;
  };
}

/**
 * A voice call's status callback (how the call ended) whose signature was checked: what
 * VoiceCalls.status reads, with the number called (`To`), which prices the minutes of a call
 * whose record is gone by then.
 */
export interface SpooledCallStatus {
  /** When the webhook arrived (ms since the epoch): when the call ended, as the step records it. */
  readonly receivedAt: number;
  readonly callStatus: {
    readonly followUpId: string;
    readonly callSid: string;
    readonly answeredBy?: string;
    readonly callStatus: string;
    readonly durationSeconds?: number;
    readonly to?: string;
  };
}

/**
 * A call picked up while Redis was away (its answer webhook), which was hung up on before it
 * heard anything: what VoiceCalls.unheard reads, so that its status callback's `completed` is not
 * taken for a person reached.
 */
export interface SpooledUnheardCall {
  /** When the call was picked up (ms since the epoch). */
  readonly receivedAt: number;
  readonly unheard: {
    readonly followUpId: string;
    readonly callSid: string;
    readonly answeredBy?: string;
  };
}

/**
 * An unsubscribe link's POST (a mail provider's RFC 8058 one-click request above all, which is not
 * sent again) whose token was verified: what CustomerFeedback.unsubscribe reads.
 */
export interface SpooledUnsubscribe {
  /** When it arrived (ms since the epoch). */
  readonly receivedAt: number;
  readonly unsubscribe: UnsubscribeTarget & {
    readonly source: "link" | "one-click";
    readonly scope: "marketing" | "all";
  };
}

/**
 * Any spooled webhook; which one it is shows by its `message`, `gather`, `smsStatus`,
 * `callStatus`, `unheard` or `unsubscribe`.
 */
export type SpooledWebhook =
  | SpooledInboundSms
  | SpooledVoiceGather
  | SpooledSmsStatus
  | SpooledCallStatus
  | SpooledUnheardCall
  | SpooledUnsubscribe;

/** Which webhook a spooled entry keeps, by the field it keeps it under. */
export type SpooledKey =
  | "message"
  | "gather"
  | "smsStatus"
  | "callStatus"
  | "unheard"
  | "unsubscribe";
/** The webhook's request as its route hands it on, and as the spool keeps it under `K`. */
export type SpooledInput<K extends SpooledKey> = Extract<SpooledWebhook, Record<K, unknown>>[K];

/** A webhook's entry in the spool: its request under `key`, and when it arrived. */
export function spoolEntry<K extends SpooledKey>(
  key: K,
  input: SpooledInput<K>,
  receivedAt: number,
): SpooledWebhook {
  // Each key names one member of the union, which TypeScript cannot follow through a computed key.
  return { receivedAt, [key]: input } as unknown as SpooledWebhook;
}

const INBOUND_SMS = "twilio-inbound-sms";
const VOICE_GATHER = "twilio-voice-gather";
const SMS_STATUS = "twilio-sms-status";
const CALL_STATUS = "twilio-voice-status";
const CALL_UNHEARD = "twilio-voice-unheard";
const UNSUBSCRIBE = "unsubscribe";

/** A file's schema: its kind, when the webhook arrived, and what it kept of the webhook. */
const fileOf = <K extends string, S extends z.ZodRawShape>(kind: K, kept: S) =>
  z.object({ kind: z.literal(kind), receivedAt: z.number().int().positive(), ...kept });

const sid = z.string().min(1).max(64);
/** What every call webhook carries: the follow-up (`?call=`), the call, who answered. */
const callFields = {
  followUpId: z.string().min(1).max(100),
  callSid: sid,
  answeredBy: z.string().min(1).max(32).optional(),
};

const keyedHash = z.string().regex(/^[A-Za-z0-9_-]{22}$/);
/** What an unsubscribe's file keeps besides its customer. */
const unsubscribeFields = {
  channel: z.enum(CHANNELS),
  addressHash: z.string().min(1).max(64).optional(),
  source: z.enum(["link", "one-click"]),
  scope: z.enum(["marketing", "all"]),
};

/**
 * The file format: JSON tagged with its kind. Files of the first version (inbound SMS only) carry
 * the same tag and fields, so they still read.
 */
const SpooledFile = z.discriminatedUnion("kind", [
  fileOf(INBOUND_SMS, {
    message: z.object({
      from: z.string().min(1).max(64),
      body: z.string(),
      messageSid: sid,
      media: z.number().int().positive().optional(),
      optOutType: z.string().min(1).max(16).optional(),
    }),
  }),
  fileOf(VOICE_GATHER, {
    gather: z.object({
      ...callFields,
      digits: z.string().min(1).max(8).optional(),
      speech: z.string().min(1).max(500).optional(),
      to: z.string().min(1).max(64).optional(),
    }),
  }),
  fileOf(SMS_STATUS, {
    smsStatus: z.object({
      messageSid: sid,
      status: z.string().min(1).max(32),
      errorCode: z.number().int().nonnegative().optional(),
    }),
  }),
  fileOf(CALL_STATUS, {
    callStatus: z.object({
      ...callFields,
      callStatus: z.string().min(1).max(32),
      durationSeconds: z.number().int().positive().optional(),
      to: z.string().min(1).max(64).optional(),
    }),
  }),
  fileOf(CALL_UNHEARD, { unheard: z.object(callFields) }),
  fileOf(UNSUBSCRIBE, {
    // The customer by the keyed hash of their id, or by the id (a link sent before 7 December
    // 2026, or a file a version before it spooled).
    unsubscribe: z.union([
      z.object({ ...unsubscribeFields, customerHash: keyedHash }),
      z.object({ ...unsubscribeFields, customerId: z.string().min(1).max(600) }),
    ]),
  }),
]);

/** A spooled webhook's kind, as its file is tagged. */
function kindOf(entry: SpooledWebhook): string {
  if ("message" in entry) return INBOUND_SMS;
  if ("gather" in entry) return VOICE_GATHER;
  if ("unheard" in entry) return CALL_UNHEARD;
  if ("unsubscribe" in entry) return UNSUBSCRIBE;
  return "smsStatus" in entry ? SMS_STATUS : CALL_STATUS;
}

/** The file's text for a webhook: JSON, tagged with its kind. */
export function spoolText(entry: SpooledWebhook): string {
  return JSON.stringify({ kind: kindOf(entry), ...entry });
}

/** How each kind of spooled webhook is handled (replayed), given when it arrived. */
export interface SpooledHandlers<R> {
  inboundSms(message: SpooledInboundSms["message"], receivedAt: number): Promise<R>;
  gather(gather: SpooledVoiceGather["gather"], receivedAt: number): Promise<R>;
  smsStatus(update: SpooledSmsStatus["smsStatus"], receivedAt: number): Promise<R>;
  callStatus(status: SpooledCallStatus["callStatus"], receivedAt: number): Promise<R>;
  unheard(call: SpooledUnheardCall["unheard"], receivedAt: number): Promise<R>;
  unsubscribe(request: SpooledUnsubscribe["unsubscribe"], receivedAt: number): Promise<R>;
}

/** Hands a spooled webhook to the handler of its kind. */
export function handleSpooled<R>(entry: SpooledWebhook, handlers: SpooledHandlers<R>): Promise<R> {
  if ("message" in entry) return handlers.inboundSms(entry.message, entry.receivedAt);
  if ("gather" in entry) return handlers.gather(entry.gather, entry.receivedAt);
  if ("smsStatus" in entry) return handlers.smsStatus(entry.smsStatus, entry.receivedAt);
  if ("unheard" in entry) return handlers.unheard(entry.unheard, entry.receivedAt);
  if ("unsubscribe" in entry) return handlers.unsubscribe(entry.unsubscribe, entry.receivedAt);
  return handlers.callStatus(entry.callStatus, entry.receivedAt);
}

/** A spooled file's webhook; undefined when its content is not one. */
export function parseSpoolText(text: string): SpooledWebhook | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = SpooledFile.safeParse(json);
  if (!parsed.success) return undefined;
  const { kind: _, ...entry } = parsed.data;
  return entry as SpooledWebhook;
}

/**
 * A file name that sorts by arrival (zero-padded milliseconds, then a sequence within the
 * process, then random), and names no number or message.
 */
export function spoolFileName(receivedAt: number, sequence: number, random: string): string {
  return `${String(receivedAt).padStart(15, "0")}-${String(sequence).padStart(6, "0")}-${random}.json`;
}

/**
 * What names an unsubscribe's file (32 hexadecimal digits; other webhooks' files have 12 random
 * ones): the request, whole, so that the same one is spooled once.
 */
function unsubscribeTag(request: SpooledUnsubscribe["unsubscribe"]): string {
  const { customerId, customerHash, channel, addressHash, source, scope } = request;
  const customer = customerHash === undefined ? customerId : { customerHash };
  return createHash("sha256")
    .update(JSON.stringify([customer, channel, addressHash ?? null, source, scope]))
    .digest("hex")
    .slice(0, 32);
}

const SPOOL_FILE = /^\d{15}-\d{6}-[0-9a-f]+\.json$/;
const TEMPORARY_FILE = /^\.\d{15}-\d{6}-[0-9a-f]+\.json\.tmp$/;

/** The spooled files' names among a folder's entries, oldest first. */
export function spooledInOrder(names: readonly string[]): string[] {
  return names.filter((name) => SPOOL_FILE.test(name)).sort();
}

/**
 * What a file moved aside to `failed/` names, for erasure: the phone numbers it holds (an inbound
 * SMS's sender, the number a call's answer or end came from), a call webhook's follow-up id, and its
 * text as written (all there is of a file that does not read as a webhook).
 */
export interface FailedSpoolFile {
  readonly numbers: readonly string[];
  readonly followUpId?: string;
  /** An opt-out (a STOP, a 9 pressed on a call) not acted on yet: only handling it does that. */
  readonly optOut: boolean;
  readonly text: string;
}

/** What a spooled file names (FailedSpoolFile), from its text. */
export function spoolFileNames(text: string): FailedSpoolFile {
  const entry = parseSpoolText(text);
  if (!entry) return { numbers: [], optOut: false, text };
  if ("message" in entry)
    return {
      numbers: [entry.message.from],
      optOut: inboundSmsKeyword(entry.message) === "opt-out",
      text,
    };
  if ("gather" in entry)
    return {
      numbers: entry.gather.to ? [entry.gather.to] : [],
      followUpId: entry.gather.followUpId,
      optOut: meansStop(entry.gather.digits, entry.gather.speech),
      text,
    };
  if ("callStatus" in entry)
    return {
      numbers: entry.callStatus.to ? [entry.callStatus.to] : [],
      followUpId: entry.callStatus.followUpId,
      optOut: false,
      text,
    };
  // An unsubscribe names a customer id, no number: kept, as only handling it opts them out.
  if ("unsubscribe" in entry) return { numbers: [], optOut: true, text };
  const call = "unheard" in entry ? entry.unheard : undefined;
  return { numbers: [], ...(call && { followUpId: call.followUpId }), optOut: false, text };
}

/**
 * The spool folder (WEBHOOK_SPOOL_DIR): one file per webhook, written whole (a temporary file,
 * synced, then renamed) and readable by the worker's user only. Holds phone numbers and texts.
 */
export class WebhookSpool {
  private sequence = 0;
  /** Unsubscribes being written, by their tag: the same one again waits for that write. */
  private readonly unsubscribesWriting = new Map<string, Promise<string | false>>();

  constructor(
    readonly dir: string,
    private readonly maxFiles = MAX_SPOOLED_WEBHOOKS,
  ) {}

  /**
   * Writes a webhook; false when the spool is full. Throws when the folder cannot be written.
   * Returns the file's name.
   */
  async add(entry: SpooledWebhook): Promise<string | false> {
    if (!("unsubscribe" in entry)) return this.write(entry, randomBytes(6).toString("hex"));
    // An unsubscribe once per request: anyone with a link (their own) may send it again and again,
    // and would otherwise fill the spool, leaving the STOPs Twilio sends meanwhile a 503.
    const tag = unsubscribeTag(entry.unsubscribe);
    const writing = this.unsubscribesWriting.get(tag);
    if (writing) return writing;
    const added = (async () => {
      const waiting = (await this.list()).find((name) => name.endsWith(`-${tag}.json`));
      return waiting ?? this.write(entry, tag);
    })();
    this.unsubscribesWriting.set(tag, added);
    try {
      return await added;
    } finally {
      this.unsubscribesWriting.delete(tag);
    }
  }

  /** Writes `entry` under a name ending in `tag` (hexadecimal); false when the spool is full. */
  private async write(entry: SpooledWebhook, tag: string): Promise<string | false> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if ((await this.list()).length >= this.maxFiles) return false;
    this.sequence = (this.sequence + 1) % 1_000_000;
    const name = spoolFileName(entry.receivedAt, this.sequence, tag);
    const temporary = path.join(this.dir, `.${name}.tmp`);
    const file = await open(temporary, "wx", 0o600);
    try {
      await file.writeFile(spoolText(entry), "utf8");
      await file.sync();
    } catch (error) {
      await file.close();
      await rm(temporary, { force: true });
      throw error;
    }
    await file.close();
    await rename(temporary, path.join(this.dir, name));
    return name;
  }

  /** The spooled files, oldest first; none when the folder does not exist. */
  async list(): Promise<string[]> {
    try {
      return spooledInOrder(await readdir(this.dir));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }

  /** A file's webhook, or undefined when its content is not one. Throws when it cannot be read. */
  async read(name: string): Promise<SpooledWebhook | undefined> {
    return parseSpoolText(await readFile(path.join(this.dir, name), "utf8"));
  }

  /** How many files were moved aside to `failed/` (none when it does not exist). */
  async failedCount(): Promise<number> {
    try {
      return (await readdir(path.join(this.dir, SPOOL_FAILED_DIR))).length;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw error;
    }
  }

  /**
   * Removes the temporary files (`.<name>.tmp`) last written over `olderThanMs` before `now`: left
   * by a process that died mid-write (or a rename that failed), their webhook was never answered
   * 200. Returns their names.
   */
  async removeStaleTemporaries(now: number, olderThanMs = STALE_TEMPORARY_MS): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    const removed: string[] = [];
    for (const name of names.filter((entry) => TEMPORARY_FILE.test(entry))) {
      const file = path.join(this.dir, name);
      const modified = await stat(file).then(
        (info) => info.mtimeMs,
        () => undefined,
      );
      if (modified === undefined || now - modified < olderThanMs) continue;
      await rm(file, { force: true });
      removed.push(name);
    }
    return removed;
  }

  async remove(name: string): Promise<void> {
    await rm(path.join(this.dir, name), { force: true });
  }

  /**
   * Removes the files moved aside to `failed/` that `matches` picks (erasure); how many. Files
   * still waiting to be handled are left: one may be a STOP, which must still opt its number out.
   */
  async removeFailed(
    matches: (file: FailedSpoolFile) => boolean | Promise<boolean>,
  ): Promise<number> {
    const failed = path.join(this.dir, SPOOL_FAILED_DIR);
    let names: string[];
    try {
      names = spooledInOrder(await readdir(failed));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw error;
    }
    let removed = 0;
    for (const name of names) {
      const file = path.join(failed, name);
      const text = await readFile(file, "utf8").catch(() => undefined);
      if (text === undefined || !(await matches(spoolFileNames(text)))) continue;
      await rm(file, { force: true });
      removed++;
    }
    return removed;
  }

  /**
   * Removes the files moved aside to `failed/` more than `maxAgeMs` before `now` (by the time of
   * the move, which `moveAside` sets), but for opt-outs (a STOP, a 9 on a call, an unsubscribe
   * request): only handling one opts its number (or customer) out, so it stays until an operator
   * moves it back into the spool or deletes it; so does a file that does not read as a webhook
   * (written by another version, or damaged: it may be an opt-out). How many went, and how many
   * such files (opt-outs or possibly) are past the age. None when there is no `failed/`.
   * `stopped` is asked between files (the worker shutting down).
   */
  async removeExpiredFailed(
    now: number,
    maxAgeMs = FAILED_WEBHOOK_MAX_AGE_MS,
    stopped: () => boolean = () => false,
  ): Promise<{ removed: number; optOutsKept: number }> {
    const failed = path.join(this.dir, SPOOL_FAILED_DIR);
    let names: string[];
    try {
      names = spooledInOrder(await readdir(failed));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { removed: 0, optOutsKept: 0 };
      throw error;
    }
    let removed = 0;
    let optOutsKept = 0;
    for (const name of names) {
      if (stopped()) break;
      const file = path.join(failed, name);
      // Not followed: a link is not a webhook of ours.
      const modified = await lstat(file).then(
        (info) => (info.isFile() ? info.mtimeMs : undefined),
        () => undefined,
      );
      if (modified === undefined || now - modified <= maxAgeMs) continue;
      const text = await readFile(file, "utf8").catch(() => undefined);
      if (text === undefined) continue;
      if (parseSpoolText(text) === undefined || spoolFileNames(text).optOut) {
        optOutsKept++;
        continue;
      }
      await rm(file, { force: true });
      removed++;
    }
    return { removed, optOutsKept };
  }

  /**
   * Moves a file that cannot be handled to `failed/`, where it is kept for the operator
   * (FAILED_WEBHOOK_MAX_AGE_MS from now: the move dates it).
   */
  async moveAside(name: string): Promise<string> {
    const failed = path.join(this.dir, SPOOL_FAILED_DIR);
    await mkdir(failed, { recursive: true, mode: 0o700 });
    const file = path.join(this.dir, name);
    // Dated before the move: a file in failed/ always carries the time it was moved there, so
    // the hourly expiry never sees an old spooled file there with the age of its webhook.
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
    await rename(file, path.join(failed, name));
    return path.join(SPOOL_FAILED_DIR, name);
  }
}
