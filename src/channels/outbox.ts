import { createHash, randomUUID } from "node:crypto";
import type { Dir } from "node:fs";
import { lstat, mkdir, opendir, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import nodemailer, { type DKIMOptions } from "nodemailer";
import type { Channel } from "../domain/events.js";
import { countSmsSegments } from "../domain/sms-segments.js";
import type { DeliveryChannel, OutgoingMessage, SendFailure, SendResult } from "./channel.js";
import { closedChannel } from "./channel-results.js";
import { mailOptions, senderDomain } from "./mail-options.js";

/** Settings of the outbox: where files go and the sender written into emails. */
export interface OutboxOptions {
  /** OUTBOX_DIR; created when missing. */
  readonly dir: string;
  /** MAIL_FROM, or a local default; emails are built exactly as for SMTP. */
  readonly from: string;
  /** REPLY_TO: the address customers' replies go to, written as Reply-To. */
  readonly replyTo?: string;
  /** Channels it stands in for; all by default. */
  readonly channels?: readonly Channel[];
  /** From `dkimOptions`: the .eml files are signed exactly as SMTP mail would be. */
  readonly dkim?: DKIMOptions;
}

/** What an SMS or voice file holds. */
export interface OutboxPhoneFile {
  readonly channel: "sms" | "voice";
  readonly followUpId: string;
  readonly to: string;
  readonly text: string;
  readonly segments: number;
}

/**
 * The no-credentials default: each message becomes a file (.eml for email, .json for SMS and
 * voice) named after its follow-up, so a redelivered job overwrites its file instead of adding one.
 */
export function createOutboxChannel(options: OutboxOptions): DeliveryChannel {
  const channels = options.channels ?? (["email", "sms", "voice"] as const);
  const domain = senderDomain(options.from);
  const composer = nodemailer.createTransport({
    streamTransport: true,
    buffer: true,
    newline: "unix",
    ...(options.dkim !== undefined && { dkim: options.dkim }),
  });
  let closed = false;

  const render = async (message: OutgoingMessage): Promise<{ ext: string; data: Buffer }> => {
    if (message.channel === "email") {
      const info = await composer.sendMail(
        mailOptions(message, options.from, domain, options.replyTo),
      );
      return { ext: ".eml", data: info.message as Buffer };
    }
    const file: OutboxPhoneFile = {
      channel: message.channel,
      followUpId: message.followUpId,
      to: message.to,
      text: message.text,
      segments: countSmsSegments(message.text),
    };
    return { ext: ".json", data: Buffer.from(`${JSON.stringify(file, null, 2)}\n`) };
  };

  return {
    transport: "outbox",
    channels,
    async send(message: OutgoingMessage): Promise<SendResult> {
      if (closed) return closedChannel("outbox");
      if (!channels.includes(message.channel)) {
        return {
          ok: false,
          error: {
            kind: "misconfigured",
            code: "EUNSUPPORTED",
            reason: `the outbox is not set up for ${message.channel} messages`,
          },
        };
      }
      try {
        const { ext, data } = await render(message);
        const name = outboxFileName(message.followUpId, ext);
        await writeAtomically(options.dir, name, data);
        return { ok: true, id: name };
      } catch (error) {
        return { ok: false, error: classifyFileFailure(error, options.dir) };
      }
    },
    async close() {
      closed = true;
      composer.close();
    },
  };
}

/**
 * `<follow-up id, sanitised>-<hash>.<ext>`: readable in a listing, safe on every file system, and
 * distinct even for ids that sanitise alike.
 */
export function outboxFileName(followUpId: string, ext: string): string {
  const readable = followUpId
    .replace(/[^A-Za-z0-9._-]+/g, "_")
    .replace(/^[._-]+/, "")
    .slice(0, 100);
  const hash = createHash("sha256").update(followUpId).digest("hex").slice(0, 10);
  return `${readable || "follow-up"}-${hash}${ext}`;
}

/**
 * A temporary file (`.<name>.<uuid>.tmp`) older than this was left by a process that died while
 * writing it (a write takes milliseconds): it holds a message too, so it goes.
 */
const STALE_TEMPORARY_MS = 10 * 60_000;
/** The names `outboxFileName` gives: the only files of the folder that expire (it may be shared). */
const MESSAGE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}-[0-9a-f]{10}\.(?:eml|json)$/;
/** A temporary file of `writeAtomically`: a message's name between a dot and a random id. */
const TEMPORARY_FILE = /^\.[A-Za-z0-9][A-Za-z0-9._-]*\.(?:eml|json)\.[0-9a-f-]+\.tmp$/;

/**
 * Removes the outbox's messages (.eml, .json, named as `outboxFileName` names them) last written
 * more than `maxAgeMs` before `now`, and temporary files left by an interrupted write; how many
 * went. Any other file, a symbolic link or a folder is left alone, whatever its name. The folder
 * is read a batch of names at a time (it may hold millions) and one file is removed at a time, so
 * that it never holds up a send; `stopped` is asked between files (the worker shutting down). A
 * file removed meanwhile (an erasure, another worker) is passed over. None when the folder does
 * not exist.
 */
export async function removeExpiredOutboxFiles(
  dir: string,
  now: number,
  maxAgeMs: number,
  stopped: () => boolean = () => false,
): Promise<number> {
  let folder: Dir;
  try {
    folder = await opendir(dir);
  } catch (error) {
    // A folder not made yet holds nothing.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
  let removed = 0;
  // Leaving the loop early closes the folder.
  for await (const entry of folder) {
    if (stopped()) break;
    const temporary = TEMPORARY_FILE.test(entry.name);
    if (!(temporary || MESSAGE_FILE.test(entry.name))) continue;
    const file = path.join(dir, entry.name);
    // Not followed: a link put in the folder is not one of ours, nor is what it points to.
    const info = await lstat(file).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (now - info.mtimeMs <= (temporary ? STALE_TEMPORARY_MS : maxAgeMs)) continue;
    await unlink(file).then(
      () => removed++,
      (error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
      },
    );
  }
  return removed;
}

/** How long the start-up check waits for the outbox folder to answer (a hung network mount). */
const WRITE_CHECK_MS = 5_000;

/**
 * Why the outbox folder cannot take messages, or undefined when it can: checked at start-up by
 * creating it when missing (one level at a time: mkdir's recursive form never returns for a
 * folder under /proc), then writing and removing a file in it, within WRITE_CHECK_MS. The
 * problem names OUTBOX_DIR and the folder, for the operator.
 */
export async function outboxWriteProblem(
  dir: string,
  waitMs = WRITE_CHECK_MS,
): Promise<string | undefined> {
  const folder = path.resolve(dir);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${waitMs / 1000} s`), waitMs);
  });
  const checked = (async () => {
    try {
      await makeFolder(folder);
      const probe = path.join(folder, outboxWriteProbeName());
      await writeFile(probe, "", { flag: "wx" });
      await unlink(probe);
      return undefined;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      return `${code}${FOLDER_CODES[code] ? `: ${FOLDER_CODES[code]}` : ""}`;
    }
  })();
  const problem = await Promise.race([checked, late]).finally(() => clearTimeout(timer));
  return problem === undefined
    ? undefined
    : `OUTBOX_DIR: cannot write to the outbox folder ${folder} (${problem}); set OUTBOX_DIR to a folder the worker's user can write to`;
}

/**
 * The name of the start-up check's file, as a message's temporary file is named: one left behind
 * (the process gone between the write and the unlink) is removed as those are, after 10 minutes.
 */
export function outboxWriteProbeName(): string {
  return `.write-check.json.${randomUUID()}.tmp`;
}

/** What the codes of a folder that cannot be written mean, in plain words. */
const FOLDER_CODES: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "not permitted",
  EROFS: "a read-only file system",
  ENOTDIR: "a part of the path is a file, not a folder",
  EEXIST: "a file, not a folder",
  ENOENT: "the folder cannot be created there",
  ENOSPC: "no space left",
};

/** mkdir -p, one level at a time: a level that cannot be made fails instead of being retried. */
async function makeFolder(folder: string): Promise<void> {
  const missing: string[] = [];
  for (let at = folder; ; at = path.dirname(at)) {
    const found = await stat(at).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    if (found) {
      if (!found.isDirectory()) throw Object.assign(new Error(at), { code: "ENOTDIR" });
      break;
    }
    missing.unshift(at);
    if (path.dirname(at) === at) break;
  }
  for (const level of missing)
    await mkdir(level).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
}

/** Readers never see half a file: write a temporary file beside it, then rename over. */
async function writeAtomically(dir: string, name: string, data: Buffer): Promise<void> {
  await mkdir(dir, { recursive: true });
  const temporary = path.join(dir, `.${name}.${randomUUID()}.tmp`);
  try {
    await writeFile(temporary, data, { flag: "wx" });
    await rename(temporary, path.join(dir, name));
  } catch (error) {
    await unlink(temporary).catch(() => {});
    throw error;
  }
}

/** The folder is wrong (read-only, a file, not ours) and stays wrong until someone fixes it. */
const MISCONFIGURED_FS_CODES = new Set(["EACCES", "EPERM", "EROFS", "ENOTDIR", "EEXIST", "EISDIR"]);

function classifyFileFailure(error: unknown, dir: string): SendFailure {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? "UNKNOWN";
  if (MISCONFIGURED_FS_CODES.has(code)) {
    return {
      kind: "misconfigured",
      code,
      reason: `cannot write to the outbox folder ${dir} (${code}); check OUTBOX_DIR`,
    };
  }
  return { kind: "transient", code, reason: `writing to the outbox folder failed (${code})` };
}
